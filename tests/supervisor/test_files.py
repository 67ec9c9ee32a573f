"""The supervisor's bookkeeping on disk, without processes: the port probe, pruning the logs of servers that are gone,
pruning model copies, the champion remembered."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from supervisor.champion import CHAMPION_FILE, Champion, recall, remember
from supervisor.copies import prune_copies
from supervisor.processes import pick_port, prune_logs
from supervisor.server import LOG_PATTERN

NAME = "movie-recommender"


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

    deleted = prune_logs(tmp_path, LOG_PATTERN, keep=2)

    assert sorted(path.name for path in deleted) == ["scoring-40002.log", "scoring-40003.log"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "models", "scoring-40001.log", "scoring-40004.log", "scoring-40004.pid", "scoring-5001.log",
    ]  # fmt: skip
    assert prune_logs(tmp_path, LOG_PATTERN, keep=2) == []


def test_model_copies_are_pruned_least_recently_used_first_never_one_in_use(tmp_path: Path) -> None:
    for age, version in enumerate("54321"):  # version 5 used last, version 1 first
        copy = tmp_path / f"movie-recommender-{version}-abc"
        copy.mkdir()
        (copy / "MLmodel").write_text("flavors: {}\n")
        os.utime(copy, (1_000_000 - age * 100, 1_000_000 - age * 100))
    (tmp_path / ".movie-recommender-6-abc-partial").mkdir()  # a download under way

    deleted = prune_copies(tmp_path, in_use={"movie-recommender-1-abc"}, keep=3)

    assert [path.name for path in deleted] == ["movie-recommender-2-abc"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".movie-recommender-6-abc-partial", "movie-recommender-1-abc", "movie-recommender-3-abc",
        "movie-recommender-4-abc", "movie-recommender-5-abc",
    ]  # fmt: skip


def test_the_champion_is_remembered_whole_and_for_its_own_model_only(tmp_path: Path) -> None:
    first, second = Champion(NAME, "1", f"{NAME}-1-abc", "run-1"), Champion(NAME, "2", f"{NAME}-2-def", None)
    assert recall(tmp_path, NAME) is None
    remember(tmp_path, first)
    remember(tmp_path, second)
    assert recall(tmp_path, NAME) == second
    assert recall(tmp_path, "another-model") is None
    assert [path.name for path in tmp_path.iterdir()] == [CHAMPION_FILE]  # written beside, then moved in place


@pytest.mark.parametrize(
    "text", ["", '{"name": "movie-recommender", "version": "1"', '{"name": "x", "ver": "1"}', "[]"]
)
def test_a_champion_file_that_cannot_be_read_is_no_champion(tmp_path: Path, text: str) -> None:
    (tmp_path / CHAMPION_FILE).write_text(text)
    assert recall(tmp_path, NAME) is None
