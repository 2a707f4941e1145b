"""A command's guardian on the local host: when the reconciler dies, the command dies with it.

A command runs in a process group (a session) of its own, so a timeout can stop its whole
tree. But a reconciler killed with SIGKILL stops nothing: the tree was reparented to init and
kept running, holding CPUs and scratch devices (issue 11, item 13). The SSH executor's remote
wrapper kills the group when the connection drops; this is the local equivalent.

`SUPERVISOR` is a standard-library Python program run as the session leader in place of
`sh -c COMMAND`. It asks the kernel for a signal when its parent dies (`PR_SET_PDEATHSIG`,
checked against a race with the parent's pid), runs the command as its child in the same
group, and exits with the command's status (or re-raises the signal that killed it). On the
parent-death signal it stops the group as a timeout would: SIGTERM, a grace period, SIGKILL.
It ignores the group-wide SIGTERM of an ordinary timeout, which is for the command; the
SIGKILL that follows takes it too.
"""

from __future__ import annotations

import signal

PARENT_DIED = signal.SIGUSR2
"""The signal the kernel sends the supervisor when the reconciler dies."""

SUPERVISOR = f"""\
import ctypes, os, signal, sys, time
parent, grace, command = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
def stop_group(signum, frame):
    try:
        os.killpg(0, signal.SIGTERM)
        time.sleep(grace)
    finally:
        os.killpg(0, signal.SIGKILL)
signal.signal({int(PARENT_DIED)}, stop_group)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
ctypes.CDLL(None, use_errno=True).prctl(1, {int(PARENT_DIED)})  # PR_SET_PDEATHSIG
if os.getppid() != parent:  # the parent died before the request took effect
    stop_group(None, None)
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal({int(PARENT_DIED)}, signal.SIG_DFL)
    os.execv("/bin/sh", ["/bin/sh", "-c", command])
while True:
    try:
        _, status = os.waitpid(child, 0)
        break
    except InterruptedError:
        continue
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def supervised(command: str, *, parent: int, grace: float, python: str) -> list[str]:
    """The argv that runs `command` with `sh -c` under the supervisor."""
    return [python, "-I", "-S", "-c", SUPERVISOR, str(parent), str(grace), command]
