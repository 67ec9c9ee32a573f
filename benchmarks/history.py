"""For you: how fast a user's history is read from a SQLite event store of 1,000,000 feedback events.

    python -m benchmarks.history [--events 1000000] [--users 20000] [--films 17000] [--lookups 5000]

Fills a migrated SQLite file (in a temporary folder) with seeded feedback: users' activity log-normal (a few users
with thousands of events, most with tens), films' popularity Zipf-like, 60% shown, 20% click, 15% like, 5% dismiss,
times over 90 days. Then reads the history of random users as the gateway does (events/history.py: the most recent
GATEWAY_HISTORY_EVENTS events through the (user, at) index, then the summary), one lookup at a time: p50/p99 of the
query alone and with the summary. Target: p50 <= 1 ms.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert

from benchmarks.common import summary, write_result
from events.history import recent_events, summarise
from events.store import EventStore
from events.tables import feedback

TARGET_P50_MS = 1.0
EVENT_SHARES = {"shown": 0.60, "click": 0.20, "like": 0.15, "dismiss": 0.05}
CHUNK = 50_000


def fill(store: EventStore, events: int, users: int, films: int, seed: int = 0) -> dict[str, Any]:
    """Write `events` seeded feedback rows; how long it took and how the users' activity is spread."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.2, users)
    user_of = rng.choice(users, size=events, p=activity / activity.sum())
    popularity = 1.0 / np.arange(1, films + 1) ** 0.8
    film_of = rng.choice(films, size=events, p=popularity / popularity.sum())
    name_of = rng.choice(list(EVENT_SHARES), size=events, p=list(EVENT_SHARES.values()))
    start = datetime(2026, 9, 1, tzinfo=UTC)
    seconds = rng.uniform(0, 90 * 86400, events)
    started = time.perf_counter()
    with store.engine.begin() as connection:
        for low in range(0, events, CHUNK):
            rows = [
                {"key": f"r:b{i}:{film_of[i]}:{name_of[i]}", "request_id": f"b{i}", "user": f"user-{user_of[i]}",
                 "film_id": int(film_of[i]), "event": str(name_of[i]), "at": start + timedelta(seconds=seconds[i])}
                for i in range(low, min(low + CHUNK, events))
            ]  # fmt: skip
            connection.execute(insert(feedback), rows)
    per_user = np.bincount(user_of, minlength=users)
    return {
        "fill_seconds": round(time.perf_counter() - started, 1),
        "events_per_user": {
            "median": int(np.median(per_user)), "p99": int(np.percentile(per_user, 99)), "max": int(per_user.max())
        },
    }  # fmt: skip


def lookups(store: EventStore, users: int, count: int, limit: int, seed: int = 1) -> dict[str, Any]:
    """`count` lookups of random users, one at a time, after one warm-up pass of 200."""
    chosen = [f"user-{u}" for u in np.random.default_rng(seed).integers(0, users, count)]
    for user in chosen[:200]:
        recent_events(store.engine, user, limit)
    query_ms, total_ms, read = [], [], []
    for user in chosen:
        started = time.perf_counter()
        events = recent_events(store.engine, user, limit)
        queried = time.perf_counter()
        summarise(events)
        done = time.perf_counter()
        query_ms.append((queried - started) * 1000)
        total_ms.append((done - started) * 1000)
        read.append(len(events))
    total = summary(total_ms)
    return {
        "query": summary(query_ms),
        "query_and_summary": total,
        "events_read": {"median": int(np.median(read)), "max": int(max(read))},
        "meets_target": total["p50_ms"] <= TARGET_P50_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--films", type=int, default=17_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--limit", type=int, default=500, help="events read per lookup (GATEWAY_HISTORY_EVENTS)")
    args = parser.parse_args()
    figures: dict[str, Any] = {"target_p50_ms": TARGET_P50_MS, "store": "SQLite file, WAL, synchronous=NORMAL"}
    figures.update(events=args.events, users=args.users, films=args.films, limit=args.limit)
    with tempfile.TemporaryDirectory() as folder:
        store = EventStore(f"sqlite:///{Path(folder) / 'events.db'}")
        store.migrate()
        figures.update(fill(store, args.events, args.users, args.films))
        figures.update(lookups(store, args.users, args.lookups, args.limit))
        store.dispose()
    write_result("history", figures)


if __name__ == "__main__":
    main()
