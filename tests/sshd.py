"""A real OpenSSH sshd on 127.0.0.1 for the SSH executor tests, as the current user.

The SSH host is tested against the server the farm runs, not a mock and not asyncssh's own
server: quoting through a login shell, channel multiplexing, SFTP and what happens to a remote
process when its connection dies are all properties of OpenSSH. Everything (host key, client key,
authorized_keys, config, pid file, log) lives in one temporary directory; the server runs in the
foreground (`-D -e`) so the test owns its process and its log.

There is deliberately no skip when sshd is missing: CI must run these tests, and `.ci/run`
installs openssh-server before `make test`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

SSHD = Path("/usr/sbin/sshd")
START_TIMEOUT = 10.0


@dataclass
class SshServer:
    """A running sshd and the files a client needs to log in to it."""

    port: int
    user: str
    process: subprocess.Popen[bytes]
    directory: Path
    client_key: Path
    host_public_key: asyncssh.SSHKey
    log: Path

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        """A known_hosts entry for this server (or claiming `key` is its key)."""
        public = (key or self.host_public_key).export_public_key().decode().strip()
        return f"[{self.host}]:{self.port} {public}\n"

    def connection_processes(self) -> list[int]:
        """Pids of the sshd processes serving connections (the children of the listener)."""
        return _children(self.process.pid)

    def stop(self) -> None:
        """Stop the listener and every connection it serves, as a host going down would."""
        if self.process.poll() is None:
            serving = _descendants(self.process.pid)
            self.process.terminate()
            for pid in serving:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_sshd(directory: Path) -> Iterator[SshServer]:
    """Start sshd with fresh keys in `directory`; stop it (and its connections) on exit."""
    server = start_sshd(directory)
    try:
        yield server
    finally:
        server.stop()


def start_sshd(directory: Path) -> SshServer:
    if not SSHD.exists():
        pytest.fail(
            f"{SSHD} is missing: the SSH executor tests need a real OpenSSH server. Install it "
            "as .ci/run does: apt-get install -y openssh-server openssh-client",
            pytrace=False,
        )
    directory.mkdir(parents=True, exist_ok=True)
    host_key = _write_key(directory / "ssh_host_ed25519_key")
    client_key_path = directory / "client_key"
    client_key = _write_key(client_key_path)
    (directory / "authorized_keys").write_bytes(client_key.export_public_key())
    if os.geteuid() == 0:
        # Debian's sshd refuses to start as root without its privilege separation directory,
        # which a fresh container (no systemd tmpfiles) does not have.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    user = _current_user()
    # A free port can be taken between probing and binding; try a few.
    for _attempt in range(3):
        port = free_port()
        config = directory / "sshd_config"
        config.write_text(_config(directory, port))
        log = directory / "sshd.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        server = SshServer(
            port=port,
            user=user,
            process=process,
            directory=directory,
            client_key=client_key_path,
            host_public_key=host_key.convert_to_public(),
            log=log,
        )
        if _wait_until_accepting(server):
            return server
        server.stop()
        if "Address already in use" not in log.read_text(errors="replace"):
            break
    pytest.fail(f"sshd did not start: {log.read_text(errors='replace')}", pytrace=False)


# The session runs the user's login shell, and bash sources $HOME/.bashrc for commands that
# come over ssh. On this kind of machine root's .bashrc runs `pyenv rehash`, which takes a lock
# file and waits 60 s (then complains on stderr) for one that a killed session left behind;
# the tests kill sessions on purpose, so one such kill stalled every later connection past the
# client's 30 s probe. Sessions get an empty HOME of their own: the user's rc files are the
# worker's business, not the test's.
def _config(directory: Path, port: int) -> str:
    (directory / "home").mkdir(exist_ok=True)
    return f"""\
SetEnv HOME={directory}/home
Port {port}
ListenAddress 127.0.0.1
HostKey {directory}/ssh_host_ed25519_key
PidFile {directory}/sshd.pid
AuthorizedKeysFile {directory}/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
MaxSessions 32
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""


def _write_key(path: Path) -> asyncssh.SSHKey:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    return key


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _wait_until_accepting(server: SshServer) -> bool:
    """True once the server sends its SSH banner; False if it exits or never answers."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        with (
            contextlib.suppress(OSError),
            socket.create_connection((server.host, server.port), timeout=1) as connection,
        ):
            if connection.recv(64).startswith(b"SSH-2.0-"):
                return True
        time.sleep(0.05)
    return False


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # The command name is in parentheses and may hold spaces; fields follow the last ')'.
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                children.append(int(entry.name))
    return sorted(children)


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found.append(child)
        found.extend(_descendants(child))
    return found


def process_alive(pid: int) -> bool:
    """`kill -0`, except that a zombie is dead (a container's pid 1 may never reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


def wait_until_dead(pid: int, *, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return not process_alive(pid)
