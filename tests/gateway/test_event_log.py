"""The gateway's event writer against real stores: every record accounted for, a locked or stopped database waited
out, a full queue counted, a bad record rejected alone, a Forget answered."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Table, func, select

from events.records import Feedback, Impression
from events.store import EventStore
from events.tables import feedback, impressions
from gateway.event_log import EventLog, EventLogUnavailable
from tests import postgres, processes

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
FAST = {"backoff_s": 0.02, "busy_timeout_s": 0.02}  # an outage is retried at once and a lock waited on briefly


def impression(request_id: str, user: str | None = "ann") -> Impression:
    return Impression(request_id, AT, user, "movie-recommender", "3", "champion", "title", ((11, 0.9), (22, 0.8)))


def click(request_id: str, film_id: int = 11, user: str | None = "ann") -> Feedback:
    return Feedback(Feedback.key_of(request_id, user, film_id, "click"), request_id, user, film_id, "click", AT)


def accounted(log: EventLog) -> int:
    """Every record the log has an account of, as /health shows it."""
    health = log.health()
    return sum(health[name] for name in ("written", "duplicates", "rejected", "lost", "queued"))


def rows(uri: str, table: Table = feedback) -> int:
    store = EventStore(uri)
    try:
        with store.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(table)).scalar_one()
    finally:
        store.dispose()


def settled(condition: Callable[[], object], timeout: float = 5.0) -> object:
    return processes.wait_until(condition, timeout, step=0.005)


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture
def log(uri: str) -> Iterator[EventLog]:
    """A started log whose store is migrated; stopped afterwards."""
    log = EventLog(uri, **FAST)
    log.start()
    assert settled(lambda: log.database_reachable)
    yield log
    log.stop(drain_timeout_s=1)


@pytest.fixture
def locked(uri: str) -> Iterator[sqlite3.Connection]:
    """Another connection holding the SQLite file's write lock (creating the file) until the test rolls it back."""
    holder = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    holder.close()


def test_every_record_is_written_once_and_the_counts_add_up(log: EventLog, uri: str) -> None:
    records = [impression(f"r{i}") for i in range(50)] + [click(f"r{i}") for i in range(50)] + [click("r1")]
    for record in records:
        log.submit(record)
    assert accounted(log) == len(records)
    assert settled(lambda: log.queued == 0)
    assert (log.written, log.duplicates, log.rejected, log.lost) == (100, 1, 0, 0)
    assert (rows(uri), rows(uri, impressions)) == (50, 50)


def test_events_wait_while_the_database_is_locked_and_are_written_after(
    log: EventLog, locked: sqlite3.Connection, uri: str
) -> None:
    for i in range(20):
        log.submit(click(f"r{i}"))
    assert settled(lambda: log.database_reachable is False)
    health = log.health()
    assert (health["queued"], health["written"], health["lost"]) == (20, 0, 0)
    assert "locked" in health["last_error"]
    locked.rollback()
    assert settled(lambda: log.written == 20)
    assert log.database_reachable is True and rows(uri) == 20 and accounted(log) == 20


def test_a_database_locked_at_start_is_migrated_and_written_once_free(locked: sqlite3.Connection, uri: str) -> None:
    log = EventLog(uri, **FAST)
    log.start()  # returns at once: the writer keeps trying to migrate the new store
    log.submit(impression("r1"))
    assert settled(lambda: log.database_reachable is False)
    locked.rollback()
    assert settled(lambda: log.written == 1)
    log.stop()


def test_a_full_queue_counts_what_it_cannot_take_as_lost(uri: str) -> None:
    log = EventLog(uri, queue_size=5, **FAST)
    for i in range(8):
        log.submit(click(f"r{i}"))
    assert (log.queued, log.lost) == (5, 3)
    log.start()
    assert settled(lambda: log.written == 5)
    log.stop()
    assert accounted(log) == 8 and rows(uri) == 5


def test_a_refused_record_is_rejected_alone_and_the_rest_of_its_group_written(uri: str) -> None:
    log = EventLog(uri, **FAST)
    bad = Feedback("r:r5:0:click", "r5", "ann", None, "click", AT)  # type: ignore[arg-type]  # film_id NOT NULL
    for record in [*(click(f"r{i}") for i in range(5)), bad, *(click(f"r{i}") for i in range(6, 10))]:
        log.submit(record)
    log.start()  # one group: all ten were queued before the writer took any
    assert settled(lambda: log.queued == 0)
    assert (log.written, log.rejected, log.lost) == (9, 1, 0)
    assert "IntegrityError" in log.health()["last_error"] and rows(uri) == 9
    log.stop()


def test_a_forget_resolves_with_what_it_deleted_once_applied(log: EventLog, uri: str) -> None:
    log.submit(impression("r1"))
    log.submit(click("r1"))
    log.submit(click("r1", 22, user=None))
    deleted: Future[int] = log.forget("ann")
    assert deleted.result(timeout=5) == 2
    assert rows(uri) == 0 and log.written == 4


def test_a_forget_whose_caller_gave_up_waiting_does_not_stop_the_writer(
    log: EventLog, locked: sqlite3.Connection, uri: str
) -> None:
    abandoned = log.forget("ann")
    assert settled(lambda: log.database_reachable is False)
    abandoned.cancel()  # what asyncio.wait_for does to the future when the route's wait times out
    locked.rollback()
    log.submit(click("r1"))
    assert settled(lambda: log.written == 2) and rows(uri) == 1


def test_stopping_while_the_database_is_locked_counts_the_queue_as_lost(
    log: EventLog, locked: sqlite3.Connection
) -> None:
    for i in range(10):
        log.submit(click(f"r{i}"))
    forgotten = log.forget("ann")
    assert settled(lambda: log.database_reachable is False)
    log.stop(drain_timeout_s=5)  # gives up at once: the database is known to be unavailable
    assert (log.lost, log.queued, log.written) == (11, 0, 0)
    with pytest.raises(EventLogUnavailable):
        forgotten.result(timeout=1)


def test_a_database_down_at_start_leaves_the_gateway_serving_and_hides_the_password() -> None:
    log = EventLog(f"postgresql://events:s3cret@127.0.0.1:{processes.free_port()}/events", **FAST)
    log.start()
    log.submit(impression("r1"))
    assert settled(lambda: log.database_reachable is False)
    health = log.health()
    assert health["url"].startswith("postgresql://events:***@") and "s3cret" not in str(health)
    assert health["queued"] == 1 and health["last_error"]
    log.stop(drain_timeout_s=1)
    assert log.lost == 1


def test_a_disabled_log_takes_nothing_and_refuses_a_forget(uri: str) -> None:
    log = EventLog(uri, enabled=False)
    log.start()
    log.submit(click("r1"))
    assert accounted(log) == 0 and log.health()["enabled"] is False
    with pytest.raises(EventLogUnavailable):
        log.forget("ann")
    assert not Path(uri.removeprefix("sqlite:///")).exists()


@pytest.mark.integration
def test_events_wait_while_postgresql_is_stopped_and_are_written_once_it_is_back() -> None:
    try:
        cluster = postgres.start_cluster()
    except FileNotFoundError as error:
        pytest.fail(str(error), pytrace=False)
    pg_ctl = [*cluster.run_as, str(cluster.bin_dir / "pg_ctl"), "-D", str(cluster.data_dir)]
    try:
        cluster.create_database("events")
        uri = f"postgresql://{postgres.SUPERUSER}:{cluster.password}@127.0.0.1:{cluster.port}/events"
        log = EventLog(uri, backoff_s=0.05)
        log.start()
        log.submit(impression("r0"))
        assert settled(lambda: log.written == 1, 30)
        subprocess.run([*pg_ctl, "stop", "-m", "fast"], check=True, capture_output=True)
        for i in range(1, 101):
            log.submit(click(f"r{i}"))
        assert settled(lambda: log.database_reachable is False, 30)
        assert log.queued == 100
        subprocess.run([*pg_ctl, "start", "-l", str(cluster.log), "-w"], check=True, capture_output=True)
        assert settled(lambda: log.written == 101, 60), log.health()
        log.stop()
        assert accounted(log) == 101 and rows(uri) == 100
    finally:
        cluster.stop()
