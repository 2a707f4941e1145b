"""`with` support for adapters that hold a resource (a SQLite connection) and have `close()`."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """Mixin: `with adapter:` closes it on the way out, whatever happened inside."""

    def close(self) -> None:
        """Release the resource; subclasses override."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
