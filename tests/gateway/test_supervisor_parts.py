"""Parts of the supervisor that need no MLflow: PID files of scoring servers sharing a port, the port probe, pruning
the logs of servers that are gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from gateway.scoring import Backend
from gateway.supervisor import ScoringProcess, group_alive, pick_port, prune_logs
from gateway.upstream import UpstreamPool


def sleeper(state_dir: Path, port: int) -> ScoringProcess:
    """A stand-in child in its own process group, registered the way the supervisor registers a scoring server."""
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    pid_file = state_dir / f"scoring-{port}.pid"
    pid_file.write_text(f"{popen.pid}\n")
    pool = UpstreamPool(f"http://127.0.0.1:{port}", 1, 1.0, 1.0)
    return ScoringProcess("1", port, popen, pid_file, state_dir / "log", Backend(pool), state_dir)


def test_a_stopped_server_leaves_the_pid_file_of_its_successor_on_the_same_port(tmp_path: Path) -> None:
    old = sleeper(tmp_path, 5001)
    new = sleeper(tmp_path, 5001)  # started while the old one was still exiting: same port, same file name
    try:
        old.stop(timeout_s=5)
        assert not group_alive(old.popen.pid)
        assert new.pid_file.read_text().strip() == str(new.popen.pid)  # `make down` can still find the new one
        new.stop(timeout_s=5)
        assert not new.pid_file.exists()
    finally:
        for process in (old, new):
            process.popen.kill()
            process.popen.wait()


def test_the_port_probe_takes_the_preferred_port_unless_something_listens() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's (its connections inherit it)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        assert pick_port("127.0.0.1", taken) != taken
        # a stopped server's connection: the server side closes first, so it lingers in TIME_WAIT on `taken`
        client = socket.create_connection(("127.0.0.1", taken))
        accepted, _ = listener.accept()
        accepted.close()
        client.close()
    # nothing listens any more; uvicorn (SO_REUSEADDR) could bind it, so the probe must say it is free
    assert pick_port("127.0.0.1", taken) == taken


def test_logs_of_servers_that_are_gone_are_pruned_to_the_newest(tmp_path: Path) -> None:
    for age, port in enumerate((5001, 40001, 40002, 40003, 40004)):
        log = tmp_path / f"scoring-{port}.log"
        log.write_text("old server\n")
        os.utime(log, (1_000_000 - age * 100, 1_000_000 - age * 100))  # 5001 newest, 40004 oldest
    (tmp_path / "scoring-40004.pid").write_text("12345\n")  # still running: its log stays whatever its age
    (tmp_path / "models").mkdir()

    deleted = prune_logs(tmp_path, keep=2)

    assert sorted(path.name for path in deleted) == ["scoring-40002.log", "scoring-40003.log"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "models", "scoring-40001.log", "scoring-40004.log", "scoring-40004.pid", "scoring-5001.log",
    ]  # fmt: skip
    assert prune_logs(tmp_path, keep=2) == []
