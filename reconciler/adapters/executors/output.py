"""Command output as both transports collect it: every byte kept, and whole lines streamed.

A batch stores each finished subtest as soon as its line appears, so `on_line` must see lines
while the command runs, not after. Chunks from a pipe or an SSH channel end anywhere (mid-line,
mid-UTF-8 sequence); splitting on the raw bytes before decoding keeps both intact. A callback that
raises is a bug in the caller: the error is kept so the host can stop the command and re-raise it,
instead of it escaping from a pipe reader or an asyncssh callback.
"""

from __future__ import annotations

from reconciler.adapters.executors.base import LineCallback


class OutputLines:
    """Collects output bytes and hands each complete line (without its newline) to a callback."""

    def __init__(self, on_line: LineCallback | None) -> None:
        self._on_line = on_line
        self._output = bytearray()
        self._partial = bytearray()
        self.callback_error: BaseException | None = None

    def feed(self, chunk: bytes) -> None:
        self._output += chunk
        if self._on_line is None or self.callback_error is not None:
            return
        self._partial += chunk
        *lines, rest = self._partial.split(b"\n")
        self._partial = bytearray(rest)
        for line in lines:
            self._deliver(bytes(line))

    def finish(self) -> None:
        """The command's output ended: a last line without a newline is still a line."""
        if self._partial and self._on_line is not None and self.callback_error is None:
            self._deliver(bytes(self._partial))
        self._partial.clear()

    @property
    def output(self) -> bytes:
        return bytes(self._output)

    def _deliver(self, line: bytes) -> None:
        assert self._on_line is not None
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            self._on_line(line.decode("utf-8", errors="replace"))
        except Exception as exc:
            self.callback_error = exc
