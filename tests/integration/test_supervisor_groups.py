"""supervisor/tether.py and the process groups of supervisor/processes.py with real processes: a tethered group ends
with the process that started it (`kill -9` included) but not with the thread that started it, and ends when its
command ends; a group taken over through its PID file is stopped like one started here, and ends with its new owner;
a group's own listening socket is told from a stranger's."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from supervisor.processes import Child, adopt, group_alive, listened_elsewhere, start
from tests import processes

pytestmark = pytest.mark.integration

# a leader that starts a child of its own and sleeps (then exits with status 3): as `mlflow models serve` runs uvicorn
FAMILY = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
    "time.sleep(float(sys.argv[1])); sys.exit(3)"  # fmt: skip
# Another process owning a group: it starts FAMILY tethered from a thread that then ends, or takes over the group
# a PID file names; it says `ready` in a file, then sleeps until killed.
OWNER = """
import sys, threading, time
from pathlib import Path
from supervisor.processes import adopt, start

folder, how, family = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
pid_file = folder / "scoring-1.pid"
if how == "tethered":
    command = [sys.executable, "-c", family, "60"]
    def tethered():
        start("family", command, folder / "family.log", pid_file=pid_file, tethered=True)
        time.sleep(2)  # the tether has asked for its parent-death signal: this thread's end sends it

    thread = threading.Thread(target=tethered)
    thread.start()
    thread.join()
else:
    adopt(pid_file, b"sleep").tie()
(folder / "ready").write_text("ready")
time.sleep(600)
"""


def owner(tmp_path: Path, how: str) -> Child:
    process = processes.start(f"owner-{how}", [sys.executable, "-c", OWNER, str(tmp_path), how, FAMILY], tmp_path)
    assert processes.wait_until((tmp_path / "ready").exists, 30, step=0.1), process.tail()
    return process


def family(tmp_path: Path, seconds: float = 60, tethered: bool = False) -> Child:
    command = [sys.executable, "-c", FAMILY, str(seconds)]
    return start("family", command, tmp_path / "family.log", pid_file=tmp_path / "scoring-1.pid", tethered=tethered)


def test_a_tethered_group_ends_with_its_owner_killed_outright_not_with_the_thread_that_started_it(
    tmp_path: Path,
) -> None:
    process = owner(tmp_path, "tethered")
    group = int((tmp_path / "scoring-1.pid").read_text())
    try:
        time.sleep(1)  # the thread that started it ended before `ready`: the tether has had that signal
        assert group_alive(group)
        process.kill()
        assert processes.wait_until(lambda: not group_alive(group), 15, step=0.1), "the group outlived its owner"
        assert f"tether: parent process {process.pid} is gone" in (tmp_path / "family.log").read_text()
    finally:
        process.kill()


def test_a_tethered_group_ends_when_its_command_ends(tmp_path: Path) -> None:
    child = family(tmp_path, seconds=1, tethered=True)
    time.sleep(0.5)
    members = [pid for pid in Path("/proc").iterdir() if pid.name.isdigit() and _in_group(pid, child.pid)]
    assert len(members) == 3  # the tether, its command, the command's child
    assert child.popen.wait(20) == 3  # the tether answers with its command's exit status
    assert not group_alive(child.pid)  # the command's own child went too


def test_a_group_taken_over_is_stopped_like_one_started_here_and_ends_with_its_new_owner(tmp_path: Path) -> None:
    left = family(tmp_path)  # started by no tether: as by a gateway from before tethers, or another owner
    try:
        assert adopt(tmp_path / "scoring-1.pid", b"not-its-command") is None
        assert not (tmp_path / "scoring-1.pid").exists()  # a file naming nothing to take over is removed
        assert group_alive(left.pid)
        (tmp_path / "scoring-1.pid").write_text(f"{left.pid}\n")
        taken = adopt(tmp_path / "scoring-1.pid", b"sleep")
        assert taken is not None and taken.pid == left.pid and taken.alive
        taken.tie()
        assert taken.guard is not None and processes.wait_until(lambda: taken.guard.alive, 5, step=0.1)  # type: ignore[union-attr]
        taken.stop(timeout_s=5)
        assert not group_alive(left.pid) and not taken.guard.alive and not taken.alive  # type: ignore[union-attr]
        assert not (tmp_path / "scoring-1.pid").exists()
    finally:
        left.kill()

    again = family(tmp_path)
    process = owner(tmp_path, "adopted")
    try:
        assert group_alive(again.pid)
        process.kill()
        assert processes.wait_until(lambda: not group_alive(again.pid), 15, step=0.1), (
            "the group outlived its new owner"
        )
    finally:
        again.kill()
        process.kill()


def test_a_groups_own_listening_socket_is_told_from_a_strangers(tmp_path: Path) -> None:
    listen = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); " \
        "open(sys.argv[2], 'w').close(); time.sleep(60)"  # fmt: skip
    port, elsewhere, listening = processes.free_port(), processes.free_port(), tmp_path / "listening"
    server = start("listener", [sys.executable, "-c", listen, str(port), str(listening)], tmp_path / "listener.log")
    try:
        assert processes.wait_until(listening.exists, 10, step=0.1), server.tail()
        assert not listened_elsewhere(server.pid, port)
        with socket.socket() as stranger:  # this test's process: not of the server's group
            stranger.bind(("127.0.0.1", elsewhere))
            stranger.listen()
            assert listened_elsewhere(server.pid, elsewhere)
        assert not listened_elsewhere(server.pid, elsewhere)  # nothing listens there now
    finally:
        server.stop(timeout_s=5)


def _in_group(proc: Path, pgid: int) -> bool:
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[2]) == pgid and fields[0] != "Z"
