"""For you: a request with `user` completed from that user's history, against a stand-in scoring server (what it is
sent is what the model would be) and a real SQLite event store the tests fill directly, with times of their own."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc

from events.history import SINK_AFTER_SHOWN
from events.records import Feedback
from events.store import EventStore
from gateway.app import create_app
from gateway.errors import HISTORY_UNAVAILABLE, UNKNOWN_USER
from gateway.settings import Settings
from model.contract import LIKED_AND_DISLIKED, MAX_FILMS
from tests.gateway.scoring_stub import OK, RECOMMENDATION, Stub, scoring_stub
from tests.processes import free_port, wait_until

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RONIN = 8


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    """The module's event store, migrated; each test writes the history of users of its own."""
    events = EventStore(f"sqlite:///{tmp_path_factory.mktemp('events') / 'events.db'}")
    events.migrate()
    yield events
    events.dispose()


@pytest.fixture(scope="module")
def served(store: EventStore) -> Iterator[tuple[TestClient, Stub]]:
    with scoring_stub() as stub:
        settings = Settings(
            scoring_url=stub.url,
            tracking_uri=f"http://127.0.0.1:{free_port()}",
            request_log=False,
            events_uri=str(store.engine.url),
            history_timeout_s=0.2,
        )
        with TestClient(create_app(settings)) as test_client:
            yield test_client, stub


@pytest.fixture
def client(served: tuple[TestClient, Stub]) -> TestClient:
    return served[0]


@pytest.fixture
def stub(served: tuple[TestClient, Stub]) -> Iterator[Stub]:
    """The stub, its record of what it was asked cleared, its answers restored after the test."""
    stub = served[1]
    stub.asked.clear()
    yield stub
    stub.records = dict(OK)


def event(user: str, minutes: int, film_id: int, name: str, request_id: str | None = None) -> Feedback:
    return Feedback(Feedback.key_of(request_id, user, film_id, name), request_id, user, film_id, name,
                    AT + timedelta(minutes=minutes))  # fmt: skip


def recommend(client: TestClient, **request: Any) -> tuple[int, dict[str, Any]]:
    response = client.post("/movies/recommendations/", json=request)
    return response.status_code, response.json()


def ids(row: dict[str, Any], name: str) -> list[int]:
    return [film["id"] for film in row.get(name) or []]


def recommending(stub: Stub, *film_ids: int) -> None:
    """The stub answers these films, in this order."""
    films = [{**RECOMMENDATION, "id": film_id, "title": f"Film {film_id}"} for film_id in film_ids]
    stub.records = {**OK, "recommend": {**OK["recommend"], "recommendations": films, "top_n": len(films)}}


def test_a_user_alone_is_answered_from_their_history_oldest_first(
    client: TestClient, stub: Stub, store: EventStore
) -> None:
    store.write([
        event("ann", 1, 101, "like"), event("ann", 2, 102, "click", "r-ann-1"), event("ann", 3, 103, "dismiss"),
        event("ann", 0, 104, "like"), event("ann", 4, 104, "dismiss"),  # dismissed later: disliked
        event("ann", 0, 105, "dismiss"), event("ann", 5, 105, "like"),  # liked later: liked
        event("bob", 9, 999, "like"),
    ])  # fmt: skip
    status, body = recommend(client, user="ann", top_n=1)
    assert status == 200, body
    (row,) = stub.rows("recommend")
    assert (ids(row, "liked"), ids(row, "disliked"), row.get("exclude")) == ([101, 102, 105], [103, 104], None)
    assert body["history"] == {"liked": 3, "disliked": 2, "excluded": 0, "sinking": 0}
    assert "ann" not in json.dumps(stub.asked)  # the user id never reaches the scoring server
    wait_until(lambda: client.get("/health").json()["events"]["queued"] == 0, timeout=5, step=0.02)
    with sqlite3.connect(store.engine.url.database) as connection:
        kinds = connection.execute("SELECT kind FROM impressions WHERE request_id = ?", (body["request_id"],))
        assert kinds.fetchall() == [("user",)]


def test_the_requests_own_films_come_last_and_the_oldest_beyond_the_limit_are_excluded(
    client: TestClient, stub: Stub, store: EventStore
) -> None:
    store.write([event("cat", minute, 1000 + minute, "like") for minute in range(MAX_FILMS + 10)])
    status, body = recommend(client, user="cat", title="Heat", liked=[7, 1005], disliked=[1009], exclude=[5])
    assert status == 200, body
    (row,) = stub.rows("recommend")
    history = [1000 + minute for minute in range(MAX_FILMS + 10) if minute not in (5, 9)]  # the request's own win
    assert ids(row, "liked") == [*history[-(MAX_FILMS - 2) :], 7, 1005]
    assert ids(row, "disliked") == [1009] and row["title"] == "Heat"
    assert ids(row, "exclude") == [5, *history[: len(history) - (MAX_FILMS - 2)]]
    assert body["history"] == {"liked": MAX_FILMS - 2, "disliked": 0, "excluded": 10, "sinking": 0}


def test_films_shown_often_and_never_taken_sink_below_the_others(
    client: TestClient, stub: Stub, store: EventStore
) -> None:
    shown = [event("dan", i, RONIN, "shown", f"r-dan-{i}") for i in range(SINK_AFTER_SHOWN)]
    store.write([*shown, event("dan", 9, 7, "like"), event("dan", 9, 31, "shown", "r-dan-0")])
    recommending(stub, RONIN, 31, 32)
    status, body = recommend(client, user="dan", top_n=2)
    assert status == 200 and stub.rows("recommend")[0]["top_n"] == 3  # one more, for the one sinking film
    assert [film["id"] for film in body["recommendations"]] == [31, 32] and body["top_n"] == 2
    status, body = recommend(client, user="dan", top_n=3)
    assert [film["id"] for film in body["recommendations"]] == [31, 32, RONIN]  # nothing else left: it comes last


def test_a_user_without_history_alone_is_404_and_with_films_answered_from_them(
    client: TestClient, stub: Stub, store: EventStore
) -> None:
    store.write([event("eve", 1, RONIN, "shown", "r-eve"), event("eve", 2, 9, "dismiss")])  # nothing liked
    for user in ("eve", "nobody"):
        status, body = recommend(client, user=user)
        assert (status, body) == (404, {"detail": UNKNOWN_USER, "code": "unknown_user"})
    assert stub.rows("recommend") == []
    status, body = recommend(client, user="nobody", title="Heat")
    assert status == 200 and body["history"] is None
    assert stub.rows("recommend") == [{"title": "Heat", "top_n": 5, "offset": 0}]


def test_a_like_just_posted_counts_before_the_store_has_it(client: TestClient, stub: Stub) -> None:
    accepted = client.post("/movies/feedback", json={"user": "fay", "film_id": RONIN, "event": "like"})
    assert accepted.status_code == 202
    status, _ = recommend(client, user="fay")
    assert status == 200 and ids(stub.rows("recommend")[0], "liked") == [RONIN]
    assert client.delete("/movies/users/fay").status_code == 200
    assert recommend(client, user="fay")[0] == 404  # forgotten: in memory too


@pytest.fixture
def store_down(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    histories = client.app.state.histories

    def unreachable(*_: Any) -> None:
        raise exc.OperationalError("SELECT", {}, Exception("unable to open database file"))

    monkeypatch.setattr(histories._events, "history", unreachable)
    yield
    histories._retry_at = 0.0


@pytest.mark.usefixtures("store_down")
def test_while_the_store_is_away_films_are_answered_alone_and_a_user_alone_is_503(
    client: TestClient, stub: Stub, store: EventStore
) -> None:
    store.write([event("gus", 1, 101, "like")])
    status, body = recommend(client, user="gus", title="Heat")
    assert status == 200 and body["history"] is None and "liked" not in stub.rows("recommend")[0]
    status, body = recommend(client, user="gus")
    assert (status, body) == (503, {"detail": HISTORY_UNAVAILABLE, "code": "events_unavailable"})


def test_a_slow_store_is_not_waited_for(client: TestClient, stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    histories, release = client.app.state.histories, threading.Event()
    monkeypatch.setattr(histories._events, "history", lambda *_: release.wait(5) and [])
    try:
        status, body = recommend(client, user="hal", title="Heat")
        assert status == 200 and body["history"] is None
    finally:
        release.set()
        histories._retry_at = 0.0


def test_a_history_film_against_the_requests_own_leaves_it_only_excluded(
    client: TestClient, stub: Stub, store: EventStore
) -> None:
    store.write([event("ivy", 1, 7, "dismiss"), event("ivy", 2, 101, "like")])
    stub.records = {**OK, "recommend": {"status": "invalid", "reason": LIKED_AND_DISLIKED.format(titles="Heat")}}
    status, _ = recommend(client, user="ivy", title="Heat")  # the title names film 7, which they dismissed
    first, second = stub.rows("recommend")
    assert (ids(first, "liked"), ids(first, "disliked")) == ([101], [7])
    assert ("liked" in second, "disliked" in second, ids(second, "exclude")) == (False, False, [101, 7])
    assert status == 422  # the stub refuses both; the model would answer the second
