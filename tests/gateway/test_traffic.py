"""Canary and shadow traffic against two stand-in scoring servers (champion and challenger) and a real SQLite event
store: who answers, how sticky it is, and that a shadow copy never delays or fails an answer."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from gateway.traffic import BUCKETS, NO_CHALLENGER, bucket, in_share, overlap_at
from tests.gateway.scoring_stub import OK, RECOMMENDATION, Stub, scoring_stub
from tests.processes import free_port, wait_until

OTHER = {**RECOMMENDATION, "id": 9, "title": "Thief"}


@pytest.fixture(scope="module")
def tracking() -> str:
    """No registry: nothing listens there, so the stand-ins' versions stay unknown (and asking costs nothing)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def champion() -> Iterator[Stub]:
    with scoring_stub() as running:
        yield running


@pytest.fixture
def challenger() -> Iterator[Stub]:
    with scoring_stub() as running:
        running.records["info"] = {**OK["info"], "build_run_id": "run-2"}
        running.records["recommend"] = {**OK["recommend"], "recommendations": [OTHER, RECOMMENDATION]}
        yield running


def gateway(champion: Stub, challenger_url: str | None, tracking: str, **settings: Any) -> TestClient:
    config = Settings(
        scoring_url=champion.url, challenger_url=challenger_url, tracking_uri=tracking, request_log=False, **settings
    )
    return TestClient(create_app(config))


def aliases(client: TestClient, count: int, **request: Any) -> list[str]:
    answers = [client.post("/movies/recommendations/", json={"title": "Heat", **request}) for _ in range(count)]
    assert all(a.status_code == 200 for a in answers)
    return [a.json()["model"]["alias"] for a in answers]


def test_a_user_keeps_their_place_and_the_share_is_the_setting() -> None:
    assert bucket("u-1", "3", "4") == bucket("u-1", "3", "4")
    users = [f"user-{i}" for i in range(20_000)]
    share = sum(in_share(10, user, "3", "4") for user in users) / len(users)
    assert 0.09 < share < 0.11
    # a new challenger draws a new share: not the same users again
    moved = sum(in_share(10, u, "3", "4") != in_share(10, u, "3", "5") for u in users) / len(users)
    assert moved > 0.1
    assert not any(in_share(0, user, "3", "4") for user in users[:1000])
    assert all(bucket(user, "3", "4") < BUCKETS for user in users[:1000])


def test_overlap_at_k() -> None:
    assert overlap_at(2, [1, 2, 3], [2, 9, 1]) == 0.5
    assert overlap_at(3, [1, 2, 3], [3, 2, 1]) == 1.0


def test_the_canary_share_is_answered_by_the_challenger(champion: Stub, challenger: Stub, tracking: str) -> None:
    with gateway(champion, challenger.url, tracking, canary_percent=100) as client:
        assert set(aliases(client, 5)) == {"challenger"}
        assert len(challenger.rows("recommend")) == 5 and not champion.rows("recommend")
        traffic = client.get("/health").json()["traffic"]
        assert traffic["canary_active"] and traffic["answered"] == {"challenger": 5}


def test_canary_assignment_is_sticky_per_user(champion: Stub, challenger: Stub, tracking: str) -> None:
    with gateway(champion, challenger.url, tracking, canary_percent=50) as client:
        seen = {user: set(aliases(client, 3, user=user)) for user in (f"u{i}" for i in range(10))}
        assert all(len(answered) == 1 for answered in seen.values())
        assert {alias for answered in seen.values() for alias in answered} == {"champion", "challenger"}


def test_shadow_scores_the_challenger_after_the_answer_and_records_the_overlap(
    champion: Stub, challenger: Stub, tracking: str, events_store: str
) -> None:
    challenger.delay_s = 0.5
    with gateway(champion, challenger.url, tracking, shadow_percent=100) as client:
        began = time.perf_counter()
        response = client.post("/movies/recommendations/", json={"title": "Heat", "top_n": 2})
        assert response.status_code == 200 and response.json()["model"]["alias"] == "champion"
        assert time.perf_counter() - began < 0.45  # the slow challenger is not waited for
        assert wait_until(lambda: client.get("/health").json()["traffic"]["shadow"]["ok"] == 1, timeout=10, step=0.05)
        assert challenger.rows("recommend") == champion.rows("recommend")  # the same request, scored again
        wait_until(lambda: client.get("/health").json()["events"]["written"] >= 2, timeout=10, step=0.02)
    with sqlite3.connect(events_store.removeprefix("sqlite:///")) as connection:
        ((k, overlap, status, latency),) = connection.execute("SELECT k, overlap, status, latency_ms FROM shadow")
    assert (k, overlap, status) == (2, 0.5, "ok") and latency >= 500


def test_a_challenger_that_is_down_fails_no_answer_and_pauses_the_shadow(champion: Stub, tracking: str) -> None:
    away = f"http://127.0.0.1:{free_port()}"
    with gateway(champion, away, tracking, shadow_percent=100, canary_percent=0) as client:
        assert set(aliases(client, 1)) == {"champion"}
        health = wait_until(
            lambda: (h := client.get("/health").json()["traffic"]["shadow"])["failed"] == 1 and h, timeout=10, step=0.05
        )
        assert health["paused_s"] and "scoring_unavailable" in health["last_error"]
        assert set(aliases(client, 5)) == {"champion"}
        assert client.get("/health").json()["traffic"]["shadow"]["skipped"] == 5


def test_without_a_challenger_canary_and_shadow_do_nothing_and_say_so(champion: Stub, tracking: str) -> None:
    with gateway(champion, None, tracking, shadow_percent=50, canary_percent=50) as client:
        assert set(aliases(client, 6, user="someone")) == {"champion"}
        traffic = client.get("/health").json()["traffic"]
        assert traffic["reason"] == NO_CHALLENGER and not traffic["canary_active"] and not traffic["shadow_active"]
        assert traffic["shadow"]["sent"] == 0
