"""B9: how fast the gateway's event log drains into the event store, SQLite and PostgreSQL.

    python -m benchmarks.events [--impressions 10000] [--postgres-uri postgresql://USER@HOST/DATABASE]

Queues 10,000 impressions of 10 films each, every one followed by a feedback event on each of its films (100,000
feedback events), into the gateway's own EventLog (gateway/event_log.py), then starts its writer and times until
everything is written: events per second, SQLite file first, then PostgreSQL (a throwaway cluster from
tests/postgres.py, with fsync off, unless --postgres-uri names a database of your own, which must be empty). Also
the cost of `submit` on the request path, in microseconds per event. Target: 10,000 events/s into each.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import write_result
from events.records import EVENTS, Feedback, Impression, Record
from events.store import EventStore
from gateway.event_log import EventLog

TARGET_EVENTS_PER_S = 10_000
FILMS = 10


def traffic(impressions: int) -> list[Record]:
    """Each answer (10 films, a few hundred users) followed by one feedback event on each of its films."""
    at = datetime.now(UTC)
    records: list[Record] = []
    for i in range(impressions):
        request_id, user = secrets.token_hex(16), f"user-{i % 500}"
        films = tuple((1000 + (i * 7 + j) % 5000, 1.0 - j / FILMS) for j in range(FILMS))
        records.append(Impression(request_id, at, user, "movie-recommender", "3", "champion", "title", films))
        for j, (film_id, _) in enumerate(films):
            name = EVENTS[j % len(EVENTS)]
            key = Feedback.key_of(request_id, user, film_id, name)
            records.append(Feedback(key, request_id, user, film_id, name, at))
    return records


def drain(uri: str, records: list[Record], group_size: int) -> dict[str, Any]:
    """Queue `records`, start the writer, time until every one is accounted for."""
    EventStore(uri).migrate()  # the schema is there before the clock starts, as in a running gateway
    log = EventLog(uri, queue_size=len(records) + 1, group_size=group_size)
    started = time.perf_counter()
    for record in records:
        log.submit(record)
    submit_s = time.perf_counter() - started
    started = time.perf_counter()
    log.start()
    while log.queued:
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    log.stop()
    health = log.health()
    return {
        "events": len(records),
        "group_size": group_size,
        **{name: health[name] for name in ("written", "duplicates", "rejected", "lost")},
        "seconds": round(seconds, 2),
        "events_per_second": round(len(records) / seconds),
        "meets_target": len(records) / seconds >= TARGET_EVENTS_PER_S,
        "submit_us_per_event": round(1e6 * submit_s / len(records), 2),
    }


@contextmanager
def throwaway_postgres() -> Iterator[tuple[str, str]]:
    """A database on a throwaway cluster (tests/postgres.py), its URI and the server's settings in words."""
    from tests import postgres

    cluster = postgres.start_cluster()
    try:
        cluster.create_database("events")
        version = cluster.query("postgres", "SHOW server_version")[0][0]
        user = postgres.SUPERUSER
        yield (
            f"postgresql://{user}:{cluster.password}@127.0.0.1:{cluster.port}/events",
            f"PostgreSQL {version}, throwaway cluster on loopback (fsync off, synchronous_commit off)",
        )
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impressions", type=int, default=10_000)
    parser.add_argument("--group-size", type=int, default=500)
    parser.add_argument("--postgres-uri", default=None, help="an empty database of your own (default: a throwaway)")
    args = parser.parse_args()
    records = traffic(args.impressions)
    figures: dict[str, Any] = {"target_events_per_second": TARGET_EVENTS_PER_S}
    with tempfile.TemporaryDirectory() as folder:
        sqlite = f"sqlite:///{Path(folder) / 'events.db'}"
        figures["sqlite"] = {"store": "SQLite file, WAL, synchronous=NORMAL", **drain(sqlite, records, args.group_size)}
    if args.postgres_uri:
        figures["postgresql"] = {"store": "given database", **drain(args.postgres_uri, records, args.group_size)}
    else:
        with throwaway_postgres() as (uri, described):
            figures["postgresql"] = {"store": described, **drain(uri, records, args.group_size)}
    write_result("b9_events", figures)


if __name__ == "__main__":
    main()
