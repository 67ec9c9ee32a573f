"""The event store's storage side: one SQLAlchemy engine on a SQLite file or a PostgreSQL database, its schema
migrated by Alembic, records written a group per transaction.

Duplicates (an impression's `request_id`, a feedback `key`, a shadow row's `request_id` already stored) are skipped
by the database itself with `INSERT ... ON CONFLICT DO NOTHING`, so two gateways writing the same facts into one
PostgreSQL never conflict; each group's rows are inserted in key order, so two such writers also take their row
locks in one order and never deadlock. A `Forget` takes effect where it stands in the group: what comes before it
is forgotten too.

SQLite runs in WAL mode (a reader never blocks the writer, nor the writer a reader) with `synchronous=NORMAL` (a
commit is durable at the next checkpoint: a power cut may lose the last commits, never corrupt the file) and waits
up to `busy_timeout_s` for another writer's lock before it reports "database is locked".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Insert, Table, create_engine, delete, event, exc, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url

from events.records import Feedback, Forget, Impression, Record, ShadowResult
from events.tables import feedback, impression_films, impressions, shadow

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x6576656E7473  # pg_advisory_xact_lock key held while one process migrates ("events")
COUNTED = {"preserve_rowcount": True}  # an executemany's rowcount: psycopg sums it over the parameter sets
CONNECT_TIMEOUT_S = 5  # PostgreSQL: how long a connection attempt may take before the database counts as down


@dataclass(frozen=True)
class WriteResult:
    """How a group went: each record is either `written` (a Forget counts once applied) or one of `duplicates`
    (already stored); `forgotten` holds the feedback rows each Forget of the group deleted, in group order."""

    written: int = 0
    duplicates: int = 0
    forgotten: tuple[int, ...] = ()


@dataclass(frozen=True)
class StoredAnswer:
    """An answer as stored: its films in answer order and the (film_id, event) pairs already recorded on it."""

    request_id: str
    user: str | None
    model_name: str | None
    model_version: str | None
    alias: str | None
    films: tuple[int, ...]
    recorded: frozenset[tuple[int, str]]


def is_transient(error: BaseException) -> bool:
    """Whether a failed write may succeed if tried again unchanged: the database is down, unreachable, locked, or
    broke the connection (SQLAlchemy's OperationalError, a pool timeout, an invalidated connection). Anything else
    (bad data, a constraint, a bug) is a refusal that no retry mends."""
    if isinstance(error, exc.OperationalError | exc.TimeoutError | exc.DisconnectionError):
        return True
    return isinstance(error, exc.DBAPIError) and error.connection_invalidated


def display_url(uri: str) -> str:
    """`uri` as logs and /health show it: without its password (an invalid one is not shown at all)."""
    try:
        return make_url(uri).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "(not a valid database URI)"


def engine_url(uri: str) -> URL:
    """The SQLAlchemy URL of an event store URI: `postgresql://` goes through the psycopg 3 driver."""
    url = make_url(uri)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


class EventStore:
    """The event store at `uri` (`sqlite:///PATH` or `postgresql://USER@HOST/DATABASE`); nothing connects until
    first used. For SQLite the file's folder is created."""

    def __init__(self, uri: str, busy_timeout_s: float = 5.0) -> None:
        self._uri = uri
        self.engine = _create_engine(engine_url(uri), busy_timeout_s)

    @property
    def url(self) -> str:
        """The URI without its password, as logs and /health show it."""
        return display_url(self._uri)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the newest revision (`alembic upgrade head`); a no-op when it is there. On
        PostgreSQL a transaction-level advisory lock makes a second process starting at once wait, then find the
        schema current."""
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def write(self, records: Sequence[Record]) -> WriteResult:
        """Write `records` in one transaction: all of them, or none when it raises."""
        written = duplicates = 0
        forgotten: list[int] = []
        with self.engine.begin() as connection:
            for segment, forget in _segments(records):
                stored = _insert_facts(connection, segment)
                written, duplicates = written + stored, duplicates + len(segment) - stored
                if forget is not None:
                    forgotten.append(_forget(connection, forget.user))
                    written += 1
        return WriteResult(written, duplicates, tuple(forgotten))

    def forget(self, user: str) -> int:
        """Forget `user` now (their feedback deleted, their impressions unlinked); returns feedback rows deleted."""
        with self.engine.begin() as connection:
            return _forget(connection, user)

    def answer(self, request_id: str) -> StoredAnswer | None:
        """The stored answer to `request_id`, or None when no impression of it is stored."""
        with self.engine.connect() as connection:
            row = connection.execute(select(impressions).where(impressions.c.request_id == request_id)).first()
            if row is None:
                return None
            films = connection.execute(
                select(impression_films.c.film_id)
                .where(impression_films.c.request_id == request_id)
                .order_by(impression_films.c.position)
            ).scalars()
            recorded = connection.execute(
                select(feedback.c.film_id, feedback.c.event).where(feedback.c.request_id == request_id)
            )
            return StoredAnswer(
                request_id,
                row.user,
                row.model_name,
                row.model_version,
                row.alias,
                tuple(films),
                frozenset((film_id, name) for film_id, name in recorded),
            )

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()


def alembic_config() -> Config:
    """Alembic's configuration for events/migrations, built in code (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def _create_engine(url: URL, busy_timeout_s: float) -> Engine:
    """An engine that never puts parameter values (user ids) into error messages; pooled connections are checked
    before use, so a restarted database is reconnected to."""
    if url.get_backend_name() != "sqlite":
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S}
        return create_engine(url, hide_parameters=True, pool_pre_ping=True, connect_args=connect_args)
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, hide_parameters=True, connect_args={"timeout": busy_timeout_s})
    event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _segments(records: Sequence[Record]) -> Iterator[tuple[list[Record], Forget | None]]:
    """The group cut at each Forget: (the facts before it, the Forget), ..., (the facts after the last, None)."""
    segment: list[Record] = []
    for record in records:
        if isinstance(record, Forget):
            yield segment, record
            segment = []
        else:
            segment.append(record)
    if segment:
        yield segment, None


def _insert_facts(connection: Connection, records: Sequence[Record]) -> int:
    """Insert impressions (with their films), feedback and shadow rows; returns how many records were new."""
    by_kind: dict[type, list[Any]] = {Impression: [], Feedback: [], ShadowResult: []}
    for record in records:
        if type(record) not in by_kind:
            raise TypeError(f"not an event record: {type(record).__name__}")
        by_kind[type(record)].append(record)
    new_impressions = _insert_returning(
        connection, impressions, "request_id", map(_impression_row, by_kind[Impression])
    )
    first = {record.request_id: record for record in reversed(by_kind[Impression])}  # a repeat is a duplicate
    films = [row for request_id in sorted(new_impressions) for row in _film_rows(first[request_id])]
    _insert_counted(connection, impression_films, films)
    feedback_rows = sorted(map(_feedback_row, by_kind[Feedback]), key=itemgetter("key"))
    shadow_rows = sorted(map(_shadow_row, by_kind[ShadowResult]), key=itemgetter("request_id"))
    new_facts = _insert_counted(connection, feedback, feedback_rows) + _insert_counted(connection, shadow, shadow_rows)
    return len(new_impressions) + new_facts


def _insert_statement(connection: Connection, table: Table) -> Insert:
    """`INSERT ... ON CONFLICT DO NOTHING` in the connection's dialect."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def _insert_counted(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert `rows` in their order (one executemany), skipping those already stored; returns how many were new."""
    if not rows:
        return 0
    result = connection.execute(_insert_statement(connection, table), rows, execution_options=COUNTED)
    return result.rowcount


def _insert_returning(connection: Connection, table: Table, key: str, rows: Iterable[dict[str, Any]]) -> set[str]:
    """Insert `rows` in `key` order, skipping those already stored; returns the keys of those that were new."""
    ordered = sorted(rows, key=itemgetter(key))
    if not ordered:
        return set()
    statement = _insert_statement(connection, table).returning(table.c[key])
    return set(connection.execute(statement, ordered).scalars())


def _forget(connection: Connection, user: str) -> int:
    """Delete the feedback of `user` and on their answers, unlink their impressions; returns feedback rows deleted."""
    theirs = select(impressions.c.request_id).where(impressions.c.user == user)
    deleted = connection.execute(
        delete(feedback).where((feedback.c.user == user) | feedback.c.request_id.in_(theirs))
    ).rowcount
    connection.execute(update(impressions).where(impressions.c.user == user).values(user=None))
    return deleted


def _utc(moment: datetime) -> datetime:
    """`moment` in UTC (a naive one is taken as UTC): SQLite keeps no time zone, so every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _impression_row(record: Impression) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "at": _utc(record.at),
        "user": record.user,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "alias": record.alias,
        "kind": record.kind,
        "n_films": len(record.films),
    }


def _film_rows(record: Impression) -> list[dict[str, Any]]:
    return [
        {"request_id": record.request_id, "position": position, "film_id": film_id, "score": score}
        for position, (film_id, score) in enumerate(record.films, start=1)
    ]


def _feedback_row(record: Feedback) -> dict[str, Any]:
    return {
        "key": record.key,
        "request_id": record.request_id,
        "user": record.user,
        "film_id": record.film_id,
        "event": record.event,
        "at": _utc(record.at),
    }


def _shadow_row(record: ShadowResult) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "at": _utc(record.at),
        "model_name": record.model_name,
        "model_version": record.model_version,
        "k": record.k,
        "overlap": record.overlap,
        "latency_ms": record.latency_ms,
        "status": record.status,
    }
