"""The exec string an SSH host sends for one command, and why it wraps the command.

A remote command must never outlive the operation that started it: a timed-out test left
running would load the worker for hours, and a dropped connection is no reason for a build to
go on. sshd does not signal a non-pty command when its channel goes away (a pty would, but would
also translate newlines and echo input), so each command runs under a small POSIX sh wrapper that
puts it in its own session and process group and kills that group when the channel's stdin
reaches end-of-file. We never write to that stdin, so EOF means one of: we timed out (we send EOF
on purpose), we closed the channel (cancelled), or the connection died (sshd closes the pipe).
One mechanism covers all three, with nothing to install on the worker but `setsid` (util-linux).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping

REMOTE_WRAPPER = """\
polls=$1
exec 3<&0 0</dev/null
setsid sh -c "$2" kernel-reconciler-command 3<&- 2>&1 &
pid=$!
(
  while read -r _ <&3; do :; done
  kill -s TERM -- "-$pid"
) >/dev/null 2>&1 &
watchdog=$!
exec 3<&-
wait "$pid" 2>/dev/null
status=$?
kill -s TERM "$watchdog" 2>/dev/null
i=0
while kill -s 0 -- "-$pid" 2>/dev/null; do
  if [ "$i" -eq 0 ]; then kill -s TERM -- "-$pid" 2>/dev/null; fi
  if [ "$i" -ge "$polls" ]; then kill -s KILL -- "-$pid" 2>/dev/null; break; fi
  i=$((i + 1))
  sleep 0.1
done
exit "$status"
"""
"""Runs $2 in a new session (the background job is no group leader, so setsid does not fork and
$! is the group id), watches the channel's stdin on fd 3 and SIGTERMs the group at EOF. When the
command's shell has exited (normally or after that SIGTERM) whatever is left of its group gets
SIGTERM and, $1 tenths of a second later, SIGKILL. The watchdog only reads, so it is a builtin
loop: no helper process holds the channel open. `wait` is silenced because dash reports a job
killed by a signal ("Terminated") on stderr."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def remote_command(command: str, *, cwd: str, env: Mapping[str, str], kill_grace: float) -> str:
    """`REMOTE_WRAPPER` around `cd CWD && exec env VAR=VALUE... sh -c COMMAND`, all quoted.

    The variables go on the command line, not through SSH's env requests, which sshd drops
    unless its AcceptEnv lists them.
    """
    for name in env:
        if not _ENV_NAME.match(name):
            raise ValueError(f"not an environment variable name: {name!r}")
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in env.items())
    inner = f"cd {shlex.quote(cwd)} && exec env {assignments}sh -c {shlex.quote(command)}"
    polls = str(math.ceil(kill_grace * 10))
    # sshd hands this to the user's login shell (`$SHELL -c`), which must be POSIX-like.
    return shlex.join(["sh", "-c", REMOTE_WRAPPER, "kernel-reconciler", polls, inner])
