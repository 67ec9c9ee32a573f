"""A command tied to the process that started it: when that process dies, however it dies (`kill -9` included), the
command's whole process group is stopped.

    python -I supervisor/tether.py PARENT_PID -- COMMAND...   lead a process group running COMMAND
    python -I supervisor/tether.py PARENT_PID --group PGID    watch group PGID (one an earlier process started)

Linux only. The tether asks the kernel for SIGHUP when its parent goes (prctl PR_SET_PDEATHSIG), then checks that
the parent is still there (it may have died before the request). Leading a group, it also asks to inherit the
group's orphans (PR_SET_CHILD_SUBREAPER): `mlflow models serve` runs uvicorn as a child through bash, a parent-death
signal is not inherited, and once `mlflow models serve` is gone its uvicorn becomes the tether's to wait for. So the
tether runs until every member of its group has ended; when its own command ends, the rest of the group is stopped.
The kernel also sends the signal when only the *thread* that started the tether ends: the tether then finds its
parent process still there and carries on. Stopping a group is SIGTERM to every member, SIGKILL after `GRACE_S`.

It imports nothing but the standard library, and is run by file path as a process of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from types import FrameType

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
# Not SIGTERM: that one comes from whoever stops the group, while this one may only mean a thread of the parent ended.
PARENT_GONE = signal.SIGHUP
GRACE_S = 10


class Tether:
    """Stops process group `group` when process `parent` dies."""

    def __init__(self, parent: int, group: int) -> None:
        self.parent, self.group = parent, group
        self.ending = self.killed = False

    def tie(self) -> bool:
        """Ask for PARENT_GONE when the parent goes; False when it is gone already (no signal would come then)."""
        signal.signal(PARENT_GONE, self._on_parent_signal)
        _prctl(PR_SET_PDEATHSIG, PARENT_GONE)
        return os.getppid() == self.parent

    def end(self, why: str = "") -> None:
        """SIGTERM every member of the group (once), SIGKILL after GRACE_S."""
        if self.ending:
            return
        self.ending = True
        if why:
            sys.stderr.write(f"tether: {why}: stopping process group {self.group}\n")
            sys.stderr.flush()
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.alarm(GRACE_S)
        _killpg(self.group, signal.SIGTERM)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        _killpg(self.group, signal.SIGKILL)
        self.killed = True

    def _on_parent_signal(self, signum: int, frame: FrameType | None) -> None:
        if os.getppid() != self.parent:  # else only the thread that started the tether ended
            self.end(f"parent process {self.parent} is gone")


def lead(parent: int, command: list[str]) -> int:
    """Run `command` in this process's group until every member has ended; the command's exit status (128 + the
    signal number when a signal ended it)."""
    tether = Tether(parent, os.getpgrp())
    signal.signal(signal.SIGTERM, lambda signum, frame: tether.end())
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if not tether.tie():
        sys.stderr.write(f"tether: parent process {parent} died before {command[0]} could start\n")
        return 1
    if tether.ending:  # stopped while it started
        return 128 + signal.SIGTERM
    pid = os.posix_spawnp(command[0], command, os.environ)  # caught signals are reset to default in the command
    code = 0
    while True:
        try:
            ended, status = os.wait()
        except ChildProcessError:  # every member is gone
            return code
        if ended == pid:
            code = os.waitstatus_to_exitcode(status)
            code = code if code >= 0 else 128 - code
            tether.end()  # what the command left running goes with it


def watch(parent: int, group: int) -> int:
    """Wait, stopping group `group` when `parent` dies, and ending once the group had its SIGKILL; SIGTERM ends the
    watch and leaves the group alone."""
    tether = Tether(parent, group)
    if not tether.tie():
        tether.end(f"parent process {parent} died before the watch began")
    while not tether.killed:
        time.sleep(1)  # signals are handled meanwhile
    return 0


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}, {value}): {os.strerror(errno)}")


def _killpg(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def main(argv: list[str]) -> int:
    parent = int(argv[0])
    if argv[1] == "--group":
        return watch(parent, int(argv[2]))
    return lead(parent, argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
