"""Host key policy for SSH workers: OpenSSH's known_hosts, with an explicit accept-new.

asyncssh verifies keys that known_hosts lists for a host and restricts the handshake to their
algorithms; this policy decides only about a key it does not list. A host with no entry at all
is unknown: refused, unless `accept_new` (StrictHostKeyChecking=accept-new), which records its
key once the handshake has proved the server holds the private half. A host with an entry that
does not match has CHANGED its key, which is what a man in the middle looks like: always refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncssh


class HostKeyPolicy(asyncssh.SSHClient):
    """The asyncssh client object of one connection attempt; remembers why it refused a key."""

    def __init__(self, *, known: asyncssh.SSHKnownHosts, accept_new: bool) -> None:
        self._known = known
        self._accept_new = accept_new
        self.refusal: str | None = None
        self.new_key: asyncssh.SSHKey | None = None
        """A key accepted as new, to record once the connection is established."""
        self.lost: Callable[[], None] = lambda: None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        host_keys, ca_keys, *_ = self._known.match(host, addr, port)
        if host_keys or ca_keys:
            self.refusal = (
                f"its host key ({key.get_fingerprint()}) does not match known_hosts: it CHANGED"
            )
            return False
        if not self._accept_new:
            self.refusal = f"its host key ({key.get_fingerprint()}) is not in known_hosts"
            return False
        self.new_key = key
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost()


def read_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    """The entries of `path`; none if it does not exist (asyncssh would fall back to ~/.ssh)."""
    try:
        return asyncssh.read_known_hosts(str(path))
    except FileNotFoundError:
        return asyncssh.import_known_hosts("")


def record_host_key(path: Path, *, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """Append `key` for `host` in OpenSSH's format (`[host]:port` when not on port 22)."""
    pattern = host if port == 22 else f"[{host}]:{port}"
    public = key.export_public_key().decode().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as known_hosts:
        known_hosts.write(f"{pattern} {public}\n")
