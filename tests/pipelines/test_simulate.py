"""The simulator: sessions planned from the real MovieLens-100k on a real catalog slice, and driven against a small
real HTTP server on loopback that keeps the gateway's contract for recommendations and feedback."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from model.contract import MAX_FEEDBACK, MAX_FILMS
from pipelines.movielens import match_items, read_movielens, user_half
from pipelines.sessions import Plan, Replay, Session, batches, cutoff_time, feedback_events, plan_sessions, read_replay
from pipelines.simulate import catalog_movies, drive, gateway_client, main

KEY = "sim-key"


@pytest.fixture(scope="session")
def replay(catalog_slice: pd.DataFrame) -> Replay:
    return read_replay(catalog_slice)


@pytest.fixture(scope="session")
def plan(replay: Replay) -> Plan:
    return plan_sessions(replay, sessions_per_user=0)


def history(replay: Replay, session: Session) -> pd.DataFrame:
    likes = replay.behaviour.likes
    return likes[likes["user"] == int(session.user.removeprefix("ml-"))].sort_values(["timestamp", "film"])


def test_sessions_ask_with_the_past_and_reward_the_future(replay: Replay, plan: Plan) -> None:
    assert plan.sessions and plan.cutoff == cutoff_time(0.8, replay.like_times)
    for session in plan.sessions:
        likes = history(replay, session)
        times = dict(zip(likes["film"], likes["timestamp"], strict=True))
        assert session.at >= plan.cutoff and 0 < len(session.liked) <= MAX_FILMS
        assert all(times[film] < session.at for film in session.liked)
        assert all(times[film] >= session.at for film in session.future) and session.future
        before = likes[likes["timestamp"] < session.at]["film"].tolist()
        assert list(session.liked) == before[-MAX_FILMS:]  # the most recent, oldest first
        assert session.loved <= set(session.future)


def test_only_validation_users_with_likes_on_both_sides(replay: Replay, plan: Plan) -> None:
    users = {int(session.user.removeprefix("ml-")) for session in plan.sessions}
    assert all(user_half(user) == "validation" for user in users)
    likes = replay.behaviour.likes
    spans = likes.groupby("user")["timestamp"].agg(["min", "max"])
    both = spans[(spans["min"] < plan.cutoff) & (spans["max"] >= plan.cutoff)].index
    assert users == {user for user in both if user % 2}
    assert any(user % 2 == 0 for user in both)  # the test half had candidates, and none was taken


def test_a_session_at_each_like_time_after_the_cutoff_at_most_sessions_per_user(replay: Replay, plan: Plan) -> None:
    limited = plan_sessions(replay, sessions_per_user=2)
    for user in {session.user for session in plan.sessions}:
        every = [session.at for session in plan.sessions if session.user == user]
        times = history(replay, next(s for s in plan.sessions if s.user == user))["timestamp"]
        assert every == sorted(set(times[times >= plan.cutoff]))
        assert [session.at for session in limited.sessions if session.user == user] == every[:2]
    assert [(s.at, s.user) for s in plan.sessions] == sorted((s.at, s.user) for s in plan.sessions)


def test_loved_films_are_those_rated_five(plan: Plan, catalog_slice: pd.DataFrame) -> None:
    ratings, items = read_movielens()
    ratings = ratings.assign(film=ratings["item"].map(match_items(items, catalog_slice)))
    rated_five = ratings[ratings["rating"] == 5]
    fives = set(zip(rated_five["user"], rated_five["film"], strict=True))
    for session in plan.sessions:
        user = int(session.user.removeprefix("ml-"))
        assert session.loved == {film for film in session.future if (user, film) in fives}
    assert 0 < sum(map(len, (s.loved for s in plan.sessions))) < sum(map(len, (s.future for s in plan.sessions)))


def test_plans_are_deterministic_and_limited(replay: Replay, plan: Plan) -> None:
    assert plan_sessions(replay, sessions_per_user=0) == plan
    few = plan_sessions(replay, max_users=5, seed=7)
    assert few.users == 5 and few == plan_sessions(replay, max_users=5, seed=7)
    drawn = {frozenset(s.user for s in plan_sessions(replay, max_users=5, seed=seed).sessions) for seed in range(4)}
    assert len(drawn) > 1
    first = plan_sessions(replay, sessions_per_user=0, max_sessions=7)
    assert first.sessions == plan.sessions[:7]


def test_the_cutoff_is_a_quantile_or_a_unix_time(replay: Replay) -> None:
    at = cutoff_time(0.5, replay.like_times)
    assert at in set(replay.like_times.tolist()) and np.mean(replay.like_times <= at) >= 0.5
    assert plan_sessions(replay, float(at)) == plan_sessions(replay, 0.5)
    for bad in (0.0, -3.0):
        with pytest.raises(ValueError, match="cutoff"):
            cutoff_time(bad, replay.like_times)
    with pytest.raises(ValueError, match="max_users"):
        plan_sessions(replay, max_users=-1)


def test_the_reward_rule() -> None:
    session = Session("ml-1", 100, (1, 2), future=(5, 6, 9), loved=frozenset({6, 9}))
    events = feedback_events(session, "r1", [7, 6, 5])
    assert [(e["film_id"], e["event"]) for e in events] == [
        (7, "shown"), (6, "shown"), (5, "shown"), (6, "click"), (5, "click"), (6, "like"),
    ]  # fmt: skip
    assert {e["request_id"] for e in events} == {"r1"}
    assert [len(b) for b in batches(events * 40)] == [MAX_FEEDBACK, MAX_FEEDBACK, 40]


def test_the_catalog_is_read_from_the_model_alone(tmp_path: Path, catalog_slice: pd.DataFrame) -> None:
    class Nothing(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: list[str], params: Any = None) -> list[str]:
            return []

    catalog_slice.head(20).to_parquet(tmp_path / "movies.parquet", index=False)
    artifacts = {"movies": str(tmp_path / "movies.parquet")}
    mlflow.pyfunc.save_model(tmp_path / "model", python_model=Nothing(), artifacts=artifacts, pip_requirements=[])
    movies = catalog_movies(str(tmp_path / "model"))
    assert movies["id"].tolist() == catalog_slice["id"].head(20).tolist()
    assert movies["genres"].tolist() == catalog_slice["genres"].head(20).tolist()


@dataclass
class Gateway:
    """What the test gateway answers: `answers[user]` (catalog ids), a `failing` user answered 503, the version
    per user; and what it was sent."""

    answers: dict[str, list[int]] = field(default_factory=dict)
    failing: str = ""
    challenger: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[list[dict[str, Any]]] = field(default_factory=list)
    keys: set[str | None] = field(default_factory=set)
    shown: dict[str, tuple[int, ...]] = field(default_factory=dict)
    recorded: set[tuple[str, int, str]] = field(default_factory=set)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recommend(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append(body)
        if body["user"] == self.failing:
            return 503, {"detail": "the scoring server cannot be reached", "code": "scoring_unavailable"}
        request_id = uuid.uuid4().hex
        films = self.answers.get(body["user"], [])[: body["top_n"]]
        self.shown[request_id] = tuple(films)
        challenger = body["user"] == self.challenger
        model = {"name": "movie-recommender", "version": "2" if challenger else "1"}
        model["alias"] = "challenger" if challenger else "champion"
        recommendations = [{"id": film, "title": f"film {film}", "score": 0.5} for film in films]
        return 200, {"recommendations": recommendations, "model": model, "request_id": request_id}

    def record(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        events = body["events"]
        self.feedback.append(events)
        accepted, duplicates, errors = 0, 0, []
        for index, event in enumerate(events):
            films = self.shown.get(event["request_id"])
            if films is None or event["film_id"] not in films:
                code = "unknown_request" if films is None else "not_in_answer"
                errors.append({"index": index, "code": code, "detail": code})
            elif (key := (event["request_id"], event["film_id"], event["event"])) in self.recorded:
                duplicates += 1
            else:
                self.recorded.add(key)
                accepted += 1
        return 202, {"accepted": accepted, "duplicates": duplicates, "errors": errors}


@contextlib.contextmanager
def gateway() -> Iterator[Gateway]:
    """The test gateway on a free loopback port; `X-API-Key` must be KEY."""
    state = Gateway()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with state.lock:
                state.keys.add(self.headers.get("x-api-key"))
                if self.headers.get("x-api-key") != KEY:
                    status, answer = 401, {"detail": "unauthorized", "code": "unauthorized"}
                elif self.path == "/movies/recommendations/":
                    status, answer = state.recommend(body)
                elif self.path == "/movies/feedback":
                    status, answer = state.record(body)
                else:
                    status, answer = 404, {"detail": "not found", "code": "not_found"}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)  # quick to shut down
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


SESSIONS = (
    Session("ml-1", 100, (1, 2), future=(5, 6), loved=frozenset({6})),
    Session("ml-3", 101, (3,), future=(7,), loved=frozenset()),
    Session("ml-5", 102, (4,), future=(8,), loved=frozenset({8})),
    Session("ml-7", 103, (9,), future=(10,), loved=frozenset()),
)


def test_driving_sends_requests_and_the_rewarded_feedback() -> None:
    with gateway() as stub:
        stub.answers = {"ml-1": [5, 11, 6, 12], "ml-3": [7, 13, 14], "ml-7": [15, 16]}
        stub.failing, stub.challenger = "ml-5", "ml-3"
        with gateway_client(stub.url, KEY, 5.0, 2) as client:
            tally = drive(client, Plan(99, SESSIONS), top_n=3, concurrency=2)
    assert sorted(stub.requests, key=lambda r: r["user"]) == [
        {"user": s.user, "liked": list(s.liked), "top_n": 3} for s in SESSIONS
    ]
    assert stub.keys == {KEY}
    sent = {(e["request_id"], e["film_id"], e["event"]) for batch in stub.feedback for e in batch}
    by_film = sorted((film, event) for _, film, event in sent)
    first = [(5, "shown"), (11, "shown"), (6, "shown"), (5, "click"), (6, "click"), (6, "like")]
    assert by_film == sorted(
        [*first, (7, "shown"), (13, "shown"), (14, "shown"), (7, "click"), (15, "shown"), (16, "shown")]
    )
    assert len(stub.feedback) == 3  # one batch per answered session
    assert (tally.sessions, tally.answered, tally.accepted, tally.duplicates) == (4, 3, 12, 0)
    assert tally.errors == {"recommend 503": 1}
    assert (tally.sent["shown"], tally.sent["click"], tally.sent["like"]) == (8, 3, 1)
    metrics = tally.metrics()
    assert metrics["v1.champion.sessions"] == 2 and metrics["v1.champion.ctr"] == pytest.approx(2 / 5)
    assert metrics["v2.challenger.sessions"] == 1 and metrics["v2.challenger.ctr"] == pytest.approx(1 / 3)
    assert metrics["errors.recommend_503"] == 1
    assert any(line.startswith("model v2 challenger: sessions 1, shown 3, CTR 0.3333") for line in tally.lines())


def test_a_wrong_key_and_an_unreachable_gateway_are_counted() -> None:
    with gateway() as stub, gateway_client(stub.url, "wrong", 5.0, 2) as client:
        tally = drive(client, Plan(99, SESSIONS[:2]))
    assert (tally.answered, tally.errors) == (0, {"recommend 401": 2})
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{free.getsockname()[1]}"
    with gateway_client(closed, None, 1.0, 2) as client:
        tally = drive(client, Plan(99, SESSIONS))
    assert (tally.sessions, tally.answered, tally.errors) == (4, 0, {"recommend unreachable": 4})


def test_the_cli_replays_movielens(
    tmp_path: Path, catalog_slice: pd.DataFrame, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog_slice.to_parquet(tmp_path / "slice.parquet", index=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setenv("GATEWAY_API_KEY", KEY)
    with gateway() as stub:
        stub.answers = {f"ml-{user}": catalog_slice["id"].head(10).tolist() for user in range(1, 944)}
        argv = ["--gateway-url", stub.url, "--catalog", str(tmp_path / "slice.parquet"), "--max-sessions", "6"]
        assert main([*argv, "--top-n", "4", "--max-users", "3"]) == 0
    assert len(stub.requests) == 6 and {len(r["liked"]) > 0 for r in stub.requests} == {True}
    assert len({r["user"] for r in stub.requests}) <= 3
    assert sum(len(batch) for batch in stub.feedback) >= 24
    out = capsys.readouterr().out
    assert "sessions 6, answered 6" in out and "model v1 champion: sessions 6, shown 24" in out
    assert "errors: none" in out


def test_only_the_gateway_is_contacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with gateway() as stub, gateway_client(stub.url, KEY, 5.0, 1) as client:
        stub.answers = {"ml-1": [5]}
        tally = drive(client, Plan(99, SESSIONS[:1]))
    assert tally.answered == 1 and tally.errors == {}
