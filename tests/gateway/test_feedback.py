"""Answers that can be attributed, feedback on them and forgetting a user, against a stand-in scoring server and a
real SQLite event store (read back with sqlite3, as an operator would)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.errors import NOT_IN_ANSWER, UNKNOWN_REQUEST
from gateway.request_runs import RequestRecord
from gateway.settings import Settings
from model.contract import BAD_USER, MAX_FEEDBACK
from tests.gateway.scoring_stub import scoring_stub
from tests.processes import free_port, wait_until

RONIN, HEAT = 8, 7  # the stub's recommendation and its query film


@pytest.fixture(scope="module")
def tracking() -> str:
    """No registry: nothing listens there, so the stand-ins' versions stay unknown (and asking costs nothing)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The module's event store; each test reads back the rows of its own requests and users."""
    return f"sqlite:///{tmp_path_factory.mktemp('events') / 'events.db'}"


@pytest.fixture(scope="module")
def client(tracking: str, store: str) -> Iterator[TestClient]:
    with scoring_stub() as stub:
        settings = Settings(scoring_url=stub.url, tracking_uri=tracking, request_log=False, events_uri=store)
        with TestClient(create_app(settings)) as test_client:
            yield test_client


def rows(store: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store.removeprefix("sqlite:///")) as connection:
        return connection.execute(sql).fetchall()


def settled(client: TestClient) -> dict[str, Any]:
    """/health's event counts once nothing is queued."""
    return wait_until(lambda: (e := client.get("/health").json()["events"])["queued"] == 0 and e, timeout=10, step=0.02)


def answer(client: TestClient, **request: Any) -> dict[str, Any]:
    response = client.post("/movies/recommendations/", json={"title": "Heat", **request})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == response.json()["request_id"]
    return response.json()


def test_an_answer_is_attributed_and_recorded_as_an_impression(client: TestClient, store: str) -> None:
    body = answer(client, user="user-1")
    assert len(body["request_id"]) == 32 and body["model"]["alias"] == "champion"
    anonymous = answer(client, liked=[HEAT], query="heist")["request_id"]
    assert anonymous != body["request_id"]  # unique per answer
    settled(client)
    sql = (
        "SELECT request_id, user, alias, kind, n_films FROM impressions WHERE request_id IN ('{}', '{}') ORDER BY kind"
    )
    stored = rows(store, sql.format(anonymous, body["request_id"]))
    assert stored == [(anonymous, None, "champion", "mixed", 1), (body["request_id"], "user-1", "champion", "title", 1)]
    films = rows(store, f"SELECT position, film_id, score FROM impression_films WHERE request_id = '{anonymous}'")
    assert films == [(1, RONIN, 0.9)]


def test_the_user_never_reaches_the_request_log(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    records: list[RequestRecord] = []
    monkeypatch.setattr(client.app.state.request_log, "submit", records.append)
    body = answer(client, user="secret-user")
    assert records and "secret-user" not in repr(records)
    assert records[0].extra["request_id"] == body["request_id"]


def test_feedback_counts_once_per_request_film_and_event(client: TestClient, store: str) -> None:
    request_id = answer(client, user="user-2")["request_id"]
    click = {"request_id": request_id, "film_id": RONIN, "event": "click"}
    first = client.post("/movies/feedback", json=click)
    assert (first.status_code, first.json()) == (202, {"accepted": 1, "duplicates": 0, "errors": []})
    again = client.post("/movies/feedback", json={"events": [click, {**click, "event": "shown"}]})
    assert again.json() == {"accepted": 1, "duplicates": 1, "errors": []}
    settled(client)
    stored = rows(store, "SELECT request_id, user, film_id, event FROM feedback WHERE user = 'user-2' ORDER BY event")
    assert stored == [(request_id, "user-2", RONIN, "click"), (request_id, "user-2", RONIN, "shown")]


def test_an_event_of_no_answer_or_of_a_film_not_in_it_is_refused(client: TestClient) -> None:
    request_id = answer(client)["request_id"]
    unknown = client.post("/movies/feedback", json={"request_id": "0" * 32, "film_id": RONIN, "event": "click"})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": UNKNOWN_REQUEST, "code": "unknown_request"})
    absent = client.post("/movies/feedback", json={"request_id": request_id, "film_id": HEAT, "event": "like"})
    assert (absent.status_code, absent.json()) == (422, {"detail": NOT_IN_ANSWER, "code": "not_in_answer"})


@pytest.mark.parametrize(
    "event",
    [
        {"film_id": RONIN, "event": "click"},  # neither request nor user
        {"user": "u", "film_id": RONIN, "event": "love"},
        {"user": "u", "event": "like"},
        {"user": "u", "film_id": "8", "event": "like"},
        {"user": "u", "film_id": RONIN, "event": "like", "at": "2026-01-01"},
        {"user": "", "film_id": RONIN, "event": "like"},
    ],
)
def test_a_malformed_event_is_422(client: TestClient, event: dict[str, Any]) -> None:
    response = client.post("/movies/feedback", json=event)
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_a_batch_keeps_its_good_events_and_reports_the_bad_by_index(client: TestClient) -> None:
    request_id = answer(client)["request_id"]
    events = [
        {"request_id": request_id, "film_id": RONIN, "event": "shown"},
        {"request_id": "f" * 32, "film_id": RONIN, "event": "click"},
        {"request_id": request_id, "film_id": HEAT, "event": "click"},
        {"request_id": request_id, "film_id": RONIN, "event": "nope"},
        {"user": "user-3", "film_id": HEAT, "event": "like"},
    ]
    response = client.post("/movies/feedback", json={"events": events})
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (1, "unknown_request"), (2, "not_in_answer"), (3, "invalid_request")
    ]  # fmt: skip


def test_a_batch_over_the_limit_is_refused_whole(client: TestClient) -> None:
    events = [{"user": "u", "film_id": i, "event": "like"} for i in range(MAX_FEEDBACK + 1)]
    response = client.post("/movies/feedback", json={"events": events})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_an_answer_known_only_to_the_store_is_checked_there(client: TestClient) -> None:
    request_id = answer(client)["request_id"]
    settled(client)
    remembered = client.app.state.answers
    client.app.state.answers = type(remembered)(10)  # as a second gateway on the same store sees it
    try:
        click = {"request_id": request_id, "film_id": RONIN, "event": "click"}
        assert client.post("/movies/feedback", json=click).json()["accepted"] == 1
        other = client.post("/movies/feedback", json={"request_id": request_id, "film_id": HEAT, "event": "click"})
        assert other.json()["code"] == "not_in_answer"
    finally:
        client.app.state.answers = remembered


def test_forgetting_a_user_deletes_their_events_and_unlinks_their_impressions(client: TestClient, store: str) -> None:
    request_id = answer(client, user="gone")["request_id"]
    client.post("/movies/feedback", json={"request_id": request_id, "film_id": RONIN, "event": "click"})
    client.post("/movies/feedback", json={"user": "gone", "film_id": HEAT, "event": "like"})
    kept = answer(client, user="kept")["request_id"]
    client.post("/movies/feedback", json={"request_id": kept, "film_id": RONIN, "event": "like"})
    response = client.delete("/movies/users/gone")
    assert (response.status_code, response.json()) == (200, {"user": "gone", "deleted": 2, "pending": False})
    assert rows(store, "SELECT user, event FROM feedback WHERE user IN ('gone', 'kept')") == [("kept", "like")]
    assert rows(store, f"SELECT user FROM impressions WHERE request_id = '{request_id}'") == [(None,)]
    # the answer stays checkable, now unattributed
    later = client.post("/movies/feedback", json={"request_id": request_id, "film_id": RONIN, "event": "shown"})
    assert later.json()["accepted"] == 1


def test_a_bad_user_id_is_422(client: TestClient) -> None:
    response = client.post("/movies/recommendations/", json={"title": "Heat", "user": "x" * 129})
    assert response.status_code == 422 and BAD_USER in response.json()["detail"]
    assert client.delete("/movies/users/%09tab").json()["code"] == "invalid_request"


def test_health_counts_every_event(client: TestClient) -> None:
    before = settled(client)
    request_id = answer(client)["request_id"]
    client.post("/movies/feedback", json={"request_id": request_id, "film_id": RONIN, "event": "shown"})
    events = settled(client)
    assert events["enabled"] and events["database_reachable"] is True
    assert (events["written"] - before["written"], events["lost"], events["rejected"]) == (2, 0, 0)
