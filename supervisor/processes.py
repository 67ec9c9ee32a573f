"""Child processes in a session of their own: started with a log and a PID file, stopped as a whole group.

A command started here leads a new session, so its process group id is its PID and everything it starts (uvicorn
under `mlflow models serve`, say) is in that group: stopping the group stops them all, and nothing else. The PID file
names the group, so that a process that died without stopping its children lets the next one (or `make down`) stop
what it left, or take it over (`adopt`). A group started `tethered` is led by supervisor/tether.py, which stops the
whole group when the process that started it dies, `kill -9` included. This module is the one place that starts,
checks and stops such groups: the supervisor, the tests, the benchmarks and the Makefile (through the command line
below) use it alike.

    python -m supervisor.processes start NAME DIR -- COMMAND...   start COMMAND (output in DIR/NAME.log, PID in
                                                                  DIR/NAME.pid) unless NAME runs already
    python -m supervisor.processes wait NAME DIR URL [SECONDS]    until URL answers 200; exit 1 (with the end of
                                                                  the log) when NAME exits or time runs out
    python -m supervisor.processes stop NAME DIR                  stop NAME's process group, remove its PID file
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

TETHER = Path(__file__).with_name("tether.py")


class _Group:
    """What a group started here and one taken over share: a name, a log, a PID file."""

    name: str
    log: Path
    pid_file: Path | None
    pid: int

    def tail(self, lines: int = 40) -> str:
        """The last `lines` lines of its log ("" when there is none)."""
        return tail(self.log, lines)

    def _forget(self) -> None:
        # A server started since on the same port (this one stopped listening before it exited) owns the file now.
        if self.pid_file is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if int(self.pid_file.read_text().strip()) == self.pid:
                self.pid_file.unlink()


@dataclass
class Child(_Group):
    """One command running in its own session, started here; `pid` is also its process group id."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    pid_file: Path | None = None

    @property
    def pid(self) -> int:  # type: ignore[override]
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the group, wait until every member is gone, SIGKILL what is left after `timeout_s`; then remove
        the PID file unless another child has written its own there since."""
        stop_group(self.pid, timeout_s, reap=self.popen.poll)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._forget()

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash would (the PID file stays, as after a crash)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


@dataclass
class Adopted(_Group):
    """A process group an earlier process started, taken over through its PID file: known by its group id only (no
    Popen: its exit status is not this process's to read). Once `tie`d, a tether stops it if this process dies."""

    name: str
    pid: int
    log: Path
    pid_file: Path | None = None
    guard: Child | None = None  # the tether watching it for this process

    @property
    def alive(self) -> bool:
        """Whether its leader runs: as for a Child, the group's command."""
        return _pgid(self.pid) == self.pid and not _zombie(self.pid)

    @property
    def returncode(self) -> int | None:
        return None

    def tie(self) -> None:
        """Stop the group when this process dies, as if it had been started `tethered` here."""
        command = [sys.executable, "-I", str(TETHER), str(os.getpid()), "--group", str(self.pid)]
        self.guard = start(f"{self.name}-guard", command, self.log)

    def stop(self, timeout_s: float = 15.0) -> None:
        """As `Child.stop`; the tether watching it stops too."""
        stop_group(self.pid, timeout_s)
        if self.guard is not None:
            self.guard.stop(timeout_s)
        self._forget()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)


def adopt(pid_file: Path, word: bytes) -> Adopted | None:
    """The group `pid_file` names (its log beside it), while a process of it has `word` in its command line; else
    None, and the file is removed."""
    with contextlib.suppress(ValueError, OSError):
        pgid = int(pid_file.read_text().strip())
        if group_alive(pgid) and group_runs(pgid, word):
            return Adopted(pid_file.stem, pgid, pid_file.with_suffix(".log"), pid_file)
    pid_file.unlink(missing_ok=True)
    return None


def start(
    name: str,
    command: Sequence[str],
    log: Path,
    *,
    pid_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    tethered: bool = False,
) -> Child:
    """Start `command` in a new session, stdout and stderr appended to `log`, its PID written to `pid_file`; when
    `tethered`, under supervisor/tether.py, so that the whole group ends when this process dies."""
    if tethered:
        command = [sys.executable, "-I", str(TETHER), str(os.getpid()), "--", *command]
    with log.open("ab") as handle:
        popen = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    if pid_file is not None:
        pid_file.write_text(f"{popen.pid}\n")
    return Child(name, popen, log, pid_file)


def stop_group(pgid: int, timeout_s: float = 15.0, reap: Callable[[], object] | None = None) -> None:
    """SIGTERM process group `pgid`, wait until it is gone, SIGKILL it after `timeout_s`.

    `reap` (our own child's `Popen.poll`) is called while waiting: an unreaped zombie leader keeps the group alive."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if reap is not None:
            reap()
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_pgid(pid) == pgid and not _zombie(pid) for pid in _pids())


def group_runs(pgid: int, word: bytes) -> bool:
    """Whether a process of group `pgid` has `word` in its command line: a PID read from a file may have been reused
    by an unrelated process since, which must not be signalled."""
    text = word.decode()
    for pid in _pids():
        if _pgid(pid) != pgid:
            continue
        with contextlib.suppress(psutil.Error):
            if text in "\0".join(psutil.Process(pid).cmdline()):
                return True
    return False


def stop_leftovers(state_dir: Path, pattern: str, word: bytes) -> list[int]:
    """Stop the groups named by the PID files matching `pattern` in `state_dir` whose command still has `word` in
    it (left by a process that did not stop cleanly), and remove the files; returns the groups stopped."""
    stopped = []
    for pid_file in sorted(state_dir.glob(pattern)):
        with contextlib.suppress(ValueError, OSError):
            pgid = int(pid_file.read_text().strip())
            if group_runs(pgid, word):
                stop_group(pgid)
                stopped.append(pgid)
        pid_file.unlink(missing_ok=True)
    return stopped


def prune_logs(state_dir: Path, pattern: str, keep: int) -> list[Path]:
    """Delete the logs matching `pattern` whose process is gone (no PID file beside the log), all but the `keep`
    newest; returns what was deleted. The log of a process that runs is never touched."""
    ended = []
    for log in state_dir.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if not log.with_suffix(".pid").exists():
                ended.append((log.stat().st_mtime, log))
    ended.sort(reverse=True)
    deleted = []
    for _, log in ended[keep:]:
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
            deleted.append(log)
    return deleted


def pick_port(host: str = "127.0.0.1", preferred: int = 0) -> int:
    """`preferred` when nothing listens there, else (or when it is 0) a free port the OS picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # as uvicorn binds: connections of a stopped server in TIME_WAIT do not make the port taken
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError(f"no free port on {host}")


def listened_elsewhere(pgid: int, port: int) -> bool:
    """Whether a process outside group `pgid` listens on TCP `port` while none of the group does (False when the
    listener's process cannot be known): a server that answers there is not the group's."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return False
    listeners = {c.pid for c in connections if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port}
    if not listeners or None in listeners:
        return False
    return all(_pgid(pid) != pgid for pid in listeners if pid is not None)


def _pids() -> list[int]:
    return psutil.pids()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def running(pid_file: Path) -> int | None:
    """The process group a PID file names, while it runs; else None."""
    with contextlib.suppress(OSError, ValueError):
        pgid = int(pid_file.read_text().strip())
        if group_alive(pgid):
            return pgid
    return None


def answers(url: str) -> bool:
    """Whether `url` answers a GET with 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main(argv: list[str]) -> int:
    """The command line of the module docstring, for the Makefile."""
    action, name, folder = argv[0], argv[1], Path(argv[2])
    pid_file, log = folder / f"{name}.pid", folder / f"{name}.log"
    pgid = running(pid_file)
    if action == "start":
        if pgid is not None:
            print(f"{name}: already running (pid {pgid}), reused")
            return 0
        folder.mkdir(parents=True, exist_ok=True)
        child = start(name, argv[argv.index("--") + 1 :], log, pid_file=pid_file)
        print(f"{name}: started (pid {child.pid}, log {log})")
        return 0
    if action == "wait":
        deadline = time.monotonic() + float(argv[4] if len(argv) > 4 else 180)
        while time.monotonic() < deadline:
            if answers(argv[3]):
                return 0
            if running(pid_file) is None:
                print(f"{name} exited; end of {log}:\n{tail(log)}")
                return 1
            time.sleep(1)
        print(f"{name} did not answer {argv[3]} in time; end of {log}:\n{tail(log)}")
        return 1
    if action == "stop":
        if pgid is None:
            print(f"{name}: not running")
        else:
            stop_group(pgid)
            print(f"{name}: stopped (pid {pgid})")
        pid_file.unlink(missing_ok=True)
        return 0
    print(f"unknown action {action!r}: start, wait or stop", file=sys.stderr)
    return 2


def tail(log: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file ("" when there is none)."""
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
