"""supervisor/processes.py with real child processes: a whole group is stopped, PID files name the right group, and
leftovers are stopped only when they still run what the file says."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from supervisor.processes import Child, group_alive, start, stop_leftovers

pytestmark = pytest.mark.integration

# a leader that starts a child of its own and sleeps: as `mlflow models serve` runs uvicorn
FAMILY = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
    "time.sleep(60)"  # fmt: skip


def family(tmp_path: Path, name: str, port: int, word: str = "sleeper") -> Child:
    log, pid_file = tmp_path / f"scoring-{port}.log", tmp_path / f"scoring-{port}.pid"
    return start(name, [sys.executable, "-c", FAMILY, word], log, pid_file=pid_file)


def members_started(child: Child) -> None:
    time.sleep(0.5)  # the leader's own child is up
    assert group_alive(child.pid)


def test_stop_ends_the_whole_group_and_removes_the_pid_file(tmp_path: Path) -> None:
    child = family(tmp_path, "one", 5001)
    members_started(child)
    child.stop(timeout_s=5)
    assert not group_alive(child.pid) and not child.pid_file.exists()  # type: ignore[union-attr]


def test_a_stopped_server_leaves_the_pid_file_of_its_successor_on_the_same_port(tmp_path: Path) -> None:
    old = family(tmp_path, "old", 5001)
    new = family(tmp_path, "new", 5001)  # started while the old one was still exiting: same port, same file name
    try:
        old.stop(timeout_s=5)
        assert not group_alive(old.pid)
        assert new.pid_file.read_text().strip() == str(new.pid)  # type: ignore[union-attr]  # `make down` finds it
        new.stop(timeout_s=5)
        assert not new.pid_file.exists()  # type: ignore[union-attr]
    finally:
        old.kill()
        new.kill()


def test_leftovers_are_stopped_only_while_they_run_what_their_file_names(tmp_path: Path) -> None:
    ours = family(tmp_path, "ours", 5001, word="mlflow-like")
    other = family(tmp_path, "other", 5002, word="something-else")  # as if its PID had been reused since
    try:
        members_started(ours)
        assert stop_leftovers(tmp_path, "scoring-*.pid", b"mlflow-like") == [ours.pid]
        assert not group_alive(ours.pid) and group_alive(other.pid)
        assert list(tmp_path.glob("scoring-*.pid")) == []  # both files are read once and gone
    finally:
        ours.kill()
        other.kill()
