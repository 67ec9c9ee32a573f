"""The event store going away under load, with the real processes: PostgreSQL stopped for a minute, and a SQLite
file locked by another connection. Answers never fail, feedback on answers the gateway remembers is still accepted,
and once the store is back every event is written or counted: written + duplicates + lost + rejected = submitted,
and the database holds exactly what was submitted."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.records import Feedback
from tests import postgres, processes
from tests.conftest import BuiltModel

pytestmark = pytest.mark.integration

OUTAGE_S = 60  # the issue's: the database stopped for 60 s under load
LOCK_S = 8  # longer than the store's 5 s busy timeout: the writer sees "database is locked" at least once
BACK_S = 45  # the writer retries at most every 30 s (gateway/event_log.py MAX_BACKOFF_S), then drains
PACE_S = 0.03  # pause between one answer's feedback and the next request: a few thousand events a minute
MAX_ANSWERS = 10_000  # the load stops here at the latest
TITLES = ("Heat", "The Matrix", "Gladiator", "Toy Story", "Fargo")  # all in the session's catalog slice
USERS = 50
DATABASE = "events"


class Load:
    """One client in a thread: a recommendation request with a user, then a feedback batch on its answer (`shown`
    for each film, `click` on the first), again and again until stopped. Counts by `phase`, which the test sets."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.phase = "before"
        self.answers: Counter[tuple[str, int]] = Counter()  # (phase, status; 0: no answer)
        self.feedback: Counter[tuple[str, int]] = Counter()
        self.films: dict[str, tuple[int, ...]] = {}  # request id of each 200 answer -> its films
        self.keys: set[str] = set()  # every feedback event the gateway accepted, as the store keys it
        self.accepted = 0
        self.refused: list[Any] = []  # 202 answers that did not accept every event sent
        self._stop = threading.Event()

    @contextlib.contextmanager
    def running(self) -> Iterator[Load]:
        thread = threading.Thread(target=self._run, name="load", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(60)

    def statuses(self, counts: Counter[tuple[str, int]], phase: str | None = None) -> Counter[int]:
        found: Counter[int] = Counter()
        for (at, status), count in counts.items():
            if phase in (None, at):
                found[status] += count
        return found

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for i in range(MAX_ANSWERS):
                if self._stop.is_set():
                    return
                self._one(client, i)
                time.sleep(PACE_S)

    def _one(self, client: httpx.Client, i: int) -> None:
        phase = self.phase
        body = {"title": TITLES[i % len(TITLES)], "top_n": 5, "user": f"user-{i % USERS}"}
        try:
            response = client.post("/movies/recommendations/", json=body)
        except httpx.HTTPError:
            self.answers[(phase, 0)] += 1
            return
        self.answers[(phase, response.status_code)] += 1
        if response.status_code != 200:
            return
        answer = response.json()
        request_id, films = answer["request_id"], tuple(film["id"] for film in answer["recommendations"])
        self.films[request_id] = films
        events = [(film, "shown") for film in films] + [(films[0], "click")]
        batch = [{"request_id": request_id, "film_id": film, "event": event} for film, event in events]
        try:
            reply = client.post("/movies/feedback", json={"events": batch})
        except httpx.HTTPError:
            self.feedback[(phase, 0)] += 1
            return
        self.feedback[(phase, reply.status_code)] += 1
        if reply.status_code != 202:
            return
        result = reply.json()
        self.accepted += result["accepted"]
        if result["accepted"] != len(events) or result["errors"]:
            self.refused.append(result)
        else:
            self.keys.update(Feedback.key_of(request_id, None, film, event) for film, event in events)


def events_state(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=30).json()["events"]


def watch(url: str, seconds: float) -> list[dict[str, Any]]:
    """The gateway's event-log state every quarter second for `seconds`."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(events_state(url))
        time.sleep(0.25)
    return seen


def drained(url: str) -> dict[str, Any]:
    """The event-log state once nothing is queued (the last one seen after BACK_S otherwise)."""
    return processes.wait_until(lambda: (state := events_state(url))["queued"] == 0 and state, BACK_S)


def assert_every_event_accounted(load: Load, state: dict[str, Any]) -> None:
    """Every answer was 200, every feedback batch accepted whole, and the counts add up to what was submitted: an
    impression per answer plus the accepted feedback events."""
    assert load.statuses(load.answers) == Counter({200: len(load.films)}), load.answers
    assert load.statuses(load.feedback) == Counter({202: len(load.films)}), load.feedback
    assert load.refused == []
    submitted = len(load.films) + load.accepted
    assert state["queued"] == 0, state
    assert state["written"] + state["duplicates"] + state["lost"] + state["rejected"] == submitted, state
    assert (state["lost"], state["rejected"]) == (0, 0), state  # the queue holds far more than this load sends
    assert state["database_reachable"] is True


def assert_stored_exactly(load: Load, rows: dict[str, set[Any]]) -> None:
    """The store holds each answer's impression and films, and each accepted event, once: no more, no fewer
    (a group retried after a commit whose acknowledgement was lost counts as duplicates, not twice)."""
    assert rows["impressions"] == set(load.films)
    assert rows["impression_films"] == {(rid, pos, film) for rid, films in load.films.items() for pos, film in
                                        enumerate(films, start=1)}  # fmt: skip
    assert rows["feedback"] == load.keys


STORED = {
    "impressions": "SELECT request_id FROM impressions",
    "impression_films": "SELECT request_id, position, film_id FROM impression_films",
    "feedback": "SELECT key FROM feedback",
}


def pg_ctl(cluster: postgres.Cluster, *args: str) -> None:
    """`pg_ctl ARGS` on the cluster's data folder, as its owner (tests/postgres.py's Cluster.stop also removes it)."""
    command = [*cluster.run_as, str(cluster.bin_dir / "pg_ctl"), *args, "-D", str(cluster.data_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_postgresql_stopped_for_a_minute_under_load_loses_nothing(
    scoring: str, built_model: BuiltModel, cluster: postgres.Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = cluster.create_database(DATABASE)  # no password in it: the gateway's libpq reads PGPASSWORD
    monkeypatch.setenv("PGPASSWORD", cluster.password)
    gateway, url = processes.gateway(tmp_path, scoring, built_model.tracking_uri, events_uri=uri, request_log="false")
    try:
        assert processes.wait_until(lambda: events_state(url)["database_reachable"], 30)
        load = Load(url)
        with load.running():
            assert processes.wait_until(lambda: events_state(url)["written"] > 0, 30)
            pg_ctl(cluster, "stop", "-m", "fast")
            load.phase = "outage"
            unknown = {"request_id": uuid.uuid4().hex, "film_id": 1, "event": "click"}
            while_down = httpx.post(f"{url}/movies/feedback", json=unknown, timeout=30)
            during = watch(url, OUTAGE_S)
            pg_ctl(cluster, "start", "-l", str(cluster.log), "-w", "-t", "60")
            load.phase = "after"
            assert processes.wait_until(lambda: events_state(url)["database_reachable"], BACK_S), events_state(url)
            time.sleep(3)
        state = drained(url)
        once_back = httpx.post(f"{url}/movies/feedback", json=unknown, timeout=30)
        rows = {name: set(cluster.query(DATABASE, sql)) for name, sql in STORED.items()}
    finally:
        gateway.stop()
    rows["impressions"] = {rid for (rid,) in rows["impressions"]}
    rows["feedback"] = {key for (key,) in rows["feedback"]}
    assert any(seen["database_reachable"] is False for seen in during), during[-1]
    assert max(seen["queued"] for seen in during) > 0
    # Feedback on answers in the gateway's memory is checked and accepted while the store is down; one on an answer
    # it does not hold cannot be checked then (503), and is unknown (404) once the store can say so.
    assert load.statuses(load.feedback, "outage")[202] > 0
    assert (while_down.status_code, while_down.json()["code"]) == (503, "events_unavailable")
    assert (once_back.status_code, once_back.json()["code"]) == (404, "unknown_request")
    assert_every_event_accounted(load, state)
    assert_stored_exactly(load, rows)


def test_a_locked_sqlite_file_delays_writes_and_loses_nothing(
    scoring: str, built_model: BuiltModel, tmp_path: Path
) -> None:
    database = tmp_path / "events.db"
    gateway, url = processes.gateway(
        tmp_path, scoring, built_model.tracking_uri, events_uri=f"sqlite:///{database}", request_log="false"
    )
    try:
        assert processes.wait_until(lambda: events_state(url)["database_reachable"], 30)
        load = Load(url)
        with load.running():
            assert processes.wait_until(lambda: events_state(url)["written"] > 0, 30)
            holder = sqlite3.connect(database, isolation_level=None, timeout=30)
            try:
                holder.execute("BEGIN EXCLUSIVE")
                load.phase = "outage"
                during = watch(url, LOCK_S)
                holder.execute("ROLLBACK")
            finally:
                holder.close()
            load.phase = "after"
            assert processes.wait_until(lambda: events_state(url)["database_reachable"], BACK_S), events_state(url)
            time.sleep(2)
        state = drained(url)
    finally:
        gateway.stop()
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = {name: set(connection.execute(sql).fetchall()) for name, sql in STORED.items()}
    rows["impressions"] = {rid for (rid,) in rows["impressions"]}
    rows["feedback"] = {key for (key,) in rows["feedback"]}
    assert any(seen["database_reachable"] is False for seen in during), during[-1]
    assert load.statuses(load.answers, "outage")[200] > 0 and load.statuses(load.feedback, "outage")[202] > 0
    assert_every_event_accounted(load, state)
    assert_stored_exactly(load, rows)
