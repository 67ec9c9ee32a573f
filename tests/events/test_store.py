"""The event store on a real SQLite file: what is written reads back, duplicates count once, a Forget forgets, the
migrated schema is the tables' own. tests/events/test_postgres.py runs the same tests on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, func, select

from events.records import Feedback, Forget, Impression, ShadowResult
from events.store import EventStore, StoredAnswer, WriteResult, is_transient
from events.tables import VERSION_TABLE, feedback, impression_films, impressions, metadata, shadow

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def impression(request_id: str, user: str | None = "ann", films: tuple[int, ...] = (11, 22, 33)) -> Impression:
    scored = tuple((film, 1.0 - i / 10) for i, film in enumerate(films))
    return Impression(request_id, AT, user, "movie-recommender", "3", "champion", "title", scored)


def event(request_id: str | None, film_id: int, name: str = "click", user: str | None = "ann") -> Feedback:
    return Feedback(Feedback.key_of(request_id, user, film_id, name), request_id, user, film_id, name, AT)


def count(store: EventStore, table: Table) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def open_store(uri: str) -> Iterator[EventStore]:
    """A migrated store at `uri`, disposed of afterwards."""
    store = EventStore(uri)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'run' / 'events.db'}"


@pytest.fixture
def store(uri: str) -> Iterator[EventStore]:
    yield from open_store(uri)


def test_a_group_reads_back_as_written(store: EventStore) -> None:
    result = store.write(
        [
            impression("r1"),
            event("r1", 22),
            event("r1", 33, "like"),
            ShadowResult("r1", AT, "movie-recommender", "4", 10, 0.7, 12.5, "ok"),
        ]
    )
    assert result == WriteResult(written=4, duplicates=0)
    assert store.answer("r1") == StoredAnswer(
        "r1", "ann", "movie-recommender", "3", "champion", (11, 22, 33), frozenset({(22, "click"), (33, "like")})
    )
    with store.engine.connect() as connection:
        films = connection.execute(select(impression_films).order_by(impression_films.c.position)).all()
        row = connection.execute(select(shadow)).one()
        n_films = connection.execute(select(impressions.c.n_films)).scalar_one()
    assert [(f.position, f.film_id, f.score) for f in films] == [(1, 11, 1.0), (2, 22, 0.9), (3, 33, 0.8)]
    assert n_films == 3
    assert (row.model_version, row.k, row.overlap, row.latency_ms, row.status) == ("4", 10, 0.7, 12.5, "ok")


def test_times_are_stored_as_the_same_instant_in_utc(store: EventStore) -> None:
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    store.write([Feedback("u:ann:5:like", None, "ann", 5, "like", paris)])
    with store.engine.connect() as connection:
        stored = connection.execute(select(feedback.c.at)).scalar_one()
    assert stored.replace(tzinfo=stored.tzinfo or UTC) == AT  # SQLite gives the UTC time back without a zone


def test_duplicates_are_skipped_and_counted_within_and_across_groups(store: EventStore) -> None:
    first = store.write([impression("r1"), event("r1", 11), event("r1", 11), event(None, 7, "like")])
    again = store.write([impression("r1", films=(99,)), event("r1", 11), event(None, 7, "like"), event("r1", 22)])
    assert first == WriteResult(written=3, duplicates=1)
    assert again == WriteResult(written=1, duplicates=3)
    assert store.answer("r1").films == (11, 22, 33)  # a repeated impression adds no films to the stored one
    assert (count(store, feedback), count(store, impression_films)) == (3, 3)


def test_a_forget_forgets_what_came_before_it_and_keeps_what_came_after(store: EventStore) -> None:
    before = [impression("r1"), event("r1", 11), event(None, 5, "like"), event("r2", 1, user=None)]
    after = [impression("r3"), event("r3", 11)]
    result = store.write([*before, impression("r2", user="bob"), Forget("ann"), *after])
    assert result == WriteResult(written=8, duplicates=0, forgotten=(2,))
    answer = store.answer("r1")
    assert answer is not None and answer.user is None and answer.recorded == frozenset()
    assert store.answer("r2").recorded == {(1, "click")}  # another user's answer keeps its feedback
    assert store.answer("r3").user == "ann" and store.answer("r3").recorded == {(11, "click")}


def test_forget_deletes_feedback_on_the_users_answers_even_without_their_name(store: EventStore) -> None:
    store.write([impression("r1"), event("r1", 11, user=None), event("r1", 22), impression("r9", user="bob")])
    assert store.forget("ann") == 2
    assert store.forget("ann") == 0
    assert count(store, feedback) == 0
    assert store.answer("r1").user is None and store.answer("r9").user == "bob"


def test_an_unknown_request_has_no_answer(store: EventStore) -> None:
    store.write([impression("r1")])
    assert store.answer("r2") is None


def test_a_refused_group_writes_nothing(store: EventStore) -> None:
    bad = Feedback("r:r1:11:click", "r1", "ann", None, "click", AT)  # type: ignore[arg-type]  # film_id NOT NULL
    with pytest.raises(Exception) as refused:  # which DBAPI error depends on the database
        store.write([impression("r1"), event("r1", 22), bad])
    assert not is_transient(refused.value)
    assert store.answer("r1") is None and count(store, feedback) == 0


def test_the_migrated_schema_is_the_tables_own(store: EventStore) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == "0002"


def test_migrating_again_changes_nothing(store: EventStore, uri: str) -> None:
    store.write([impression("r1"), event("r1", 11)])
    second = EventStore(uri)
    second.migrate()
    second.migrate()
    assert second.answer("r1").recorded == {(11, "click")}
    second.dispose()


def test_the_url_never_shows_the_password() -> None:
    store = EventStore("postgresql://events:s3cret@db.example:5432/events")
    assert store.url == "postgresql://events:***@db.example:5432/events"
    assert store.engine.url.drivername == "postgresql+psycopg"


def test_sqlite_runs_in_wal_mode_in_a_folder_it_creates(store: EventStore, uri: str) -> None:
    assert Path(uri.removeprefix("sqlite:///")).parent.is_dir()
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"


def test_a_locked_sqlite_file_is_a_transient_error(uri: str) -> None:
    store = next(open_store(uri))
    store.dispose()
    store = EventStore(uri, busy_timeout_s=0.05)
    holder = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout
    try:
        with pytest.raises(Exception) as locked:
            store.write([impression("r1")])
        assert is_transient(locked.value) and "locked" in str(locked.value)
    finally:
        holder.rollback()
        holder.close()
    assert store.write([impression("r1")]).written == 1
    store.dispose()


def test_a_reader_is_not_held_up_by_a_writer_holding_the_lock(store: EventStore, uri: str) -> None:
    store.write([impression("r1")])
    holder = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("DELETE FROM impression_films")  # uncommitted: the reader sees the last commit
    try:
        reader = EventStore(uri, busy_timeout_s=0.01)
        assert reader.answer("r1").films == (11, 22, 33)
        reader.dispose()
    finally:
        holder.rollback()
        holder.close()
