"""The three real processes together: `mlflow server`, `mlflow models serve`, the gateway; real HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from gateway.schemas import RecommendationResponse
from tests import processes
from tests.conftest import BuiltModel
from tests.integration.conftest import EXPERIMENT, request_log_records

pytestmark = pytest.mark.integration


def recommend(gateway: str, body: dict, timeout: float = 30.0) -> httpx.Response:
    return httpx.post(f"{gateway}/movies/recommendations/", json=body, timeout=timeout)


def request_runs(tracking_uri: str, experiment: str, titles: set[str], since_ms: int, timeout: float = 60.0) -> dict:
    """The request log's runs by title param for requests started at `since_ms` or later (other tests, the fuzzer
    among them, log to the same experiment and may ask for the same titles), once a run for each of `titles` has been
    written completely (the writer finishes a run last: an unfinished one may have its params, not yet its metrics)."""
    client = MlflowClient(tracking_uri)
    deadline = time.monotonic() + timeout
    by_title: dict = {}
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs([found.experiment_id], max_results=5000) if found else []
        by_title = {
            run.data.params.get("title"): run
            for run in runs
            if run.info.status == "FINISHED" and run.info.start_time >= since_ms
        }
        if titles <= set(by_title):
            break
        time.sleep(0.5)
    return by_title


def test_the_readme_request(gateway: str, built_model: BuiltModel) -> None:
    response = recommend(gateway, {"title": "The Matrix", "top_n": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"]["title"] == "The Matrix" and body["query"]["matched"] == "exact"
    films = body["recommendations"]
    assert len(films) == 5
    for film in films:
        assert {"id", "title", "year", "genres", "directors", "cast", "imdb_url", "cover_url", "score"} <= set(film)
        assert film["cover_url"] == f"{gateway}/movies/{film['id']}/cover.svg"  # movies.db has no images
    assert body["query"]["imdb_url"] == "https://www.imdb.com/title/tt0133093/"
    assert {"The Matrix Reloaded", "The Matrix Revolutions"} <= {film["title"] for film in films}
    assert body["model"] == {"name": built_model.name, "version": built_model.version, "alias": "champion"}
    RecommendationResponse.model_validate(body)  # the gateway passes model records through: they fit the schema


def test_covers_and_genres_of_the_served_model(gateway: str) -> None:
    matrix = recommend(gateway, {"title": "The Matrix", "top_n": 1}).json()["query"]
    cover = httpx.get(matrix["cover_url"], timeout=30)
    assert cover.status_code == 200 and cover.headers["content-type"] == "image/svg+xml"
    assert "The Matrix" in cover.text and "1999" in cover.text and "Lana Wachowski" in cover.text
    genres = httpx.get(f"{gateway}/movies/genres", timeout=30).json()["genres"]
    names = [genre["name"] for genre in genres]
    assert {"Sci-Fi", "Drama", "Crime"} <= set(names) and names == sorted(names, key=str.casefold)
    assert all(0 < genre["films"] <= 500 for genre in genres)  # the 500-film slice


def test_fuzzy_and_year(gateway: str) -> None:
    fuzzy = recommend(gateway, {"title": "the matirx", "top_n": 2}).json()
    assert (fuzzy["query"]["title"], fuzzy["query"]["matched"]) == ("The Matrix", "fuzzy")
    assert len(fuzzy["recommendations"]) == 2


def test_unknown_title_is_404_with_suggestions(gateway: str) -> None:
    response = recommend(gateway, {"title": "Matrix Rebooted Forever Extended Cut"})
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "unknown_title"
    assert 1 <= len(body["suggestions"]) <= 5
    assert {"id", "title", "year", "genres"} == set(body["suggestions"][0])


@pytest.mark.parametrize("body", [{}, {"title": ""}, {"title": "Heat", "top_n": 0}, {"title": "Heat", "top_n": "x"}])
def test_bad_bodies_are_422(gateway: str, body: dict) -> None:
    response = recommend(gateway, body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize(
    "title",
    [
        "Матрица 黑客帝国 The Matrix",  # mixed scripts
        "The\u0007Matrix\u200b",  # a control character and a zero-width space inside
        "\u202exirtaM ehT",  # right-to-left override
        "Ame\u0301lie",  # combining accent
        "🎬🍿",
    ],
)
def test_odd_titles_are_answered_cleanly(gateway: str, title: str) -> None:
    response = recommend(gateway, {"title": title, "top_n": 3})
    assert response.status_code in (200, 404, 422), response.text
    body = response.json()
    if response.status_code == 200:
        assert len(body["recommendations"]) == 3
    else:
        assert isinstance(body["detail"], str) and body["code"] in ("unknown_title", "invalid_request")
    assert "Traceback" not in response.text


def test_health_names_the_served_model(gateway: str, built_model: BuiltModel) -> None:
    health = httpx.get(f"{gateway}/health").json()
    assert health["status"] == "ok"
    assert health["scoring"]["reachable"] is True
    assert health["model"] == {"name": built_model.name, "version": built_model.version, "alias": "champion"}
    assert health["request_log"]["tracking_reachable"] in (True, None)
    assert httpx.get(f"{gateway}/docs").status_code == 200


def test_every_request_becomes_a_run_with_params_and_metrics(gateway: str, built_model: BuiltModel) -> None:
    titles = ["Toy Story", "Titanic", "Fargo"]
    since_ms = int(time.time() * 1000)
    for top_n, title in enumerate(titles, start=2):
        assert recommend(gateway, {"title": title, "top_n": top_n}).status_code == 200
    assert recommend(gateway, {"title": "Zzyzx Qwerty Plonk"}).status_code == 404
    by_title = request_runs(built_model.tracking_uri, EXPERIMENT, {*titles, "Zzyzx Qwerty Plonk"}, since_ms)
    for top_n, title in enumerate(titles, start=2):
        run = by_title[title]
        assert run.info.status == "FINISHED"
        assert run.data.params["top_n"] == str(top_n)
        assert run.data.metrics["n_returned"] == top_n
        assert 0 < run.data.metrics["latency_ms"] < 30_000
        assert run.data.tags["status"] == "ok"
        assert run.data.tags["model_version"] == built_model.version
    unknown = by_title["Zzyzx Qwerty Plonk"]
    assert (unknown.data.tags["status"], unknown.data.metrics["n_returned"]) == ("unknown_title", 0)


def test_stopped_scoring_server_gives_503_and_the_gateway_stays_up(built_model: BuiltModel, work_dir: Path) -> None:
    server, url = processes.model_server(work_dir, built_model.tracking_uri, f"models:/{built_model.name}/1")
    process, gateway_url = processes.gateway(work_dir, url, built_model.tracking_uri, experiment=EXPERIMENT)
    try:
        assert recommend(gateway_url, {"title": "Gladiator"}).status_code == 200
        server.stop()
        for _ in range(3):
            response = recommend(gateway_url, {"title": "Gladiator"})
            assert response.status_code == 503
            assert response.json()["code"] == "scoring_unavailable"
        health = httpx.get(f"{gateway_url}/health")
        assert health.status_code == 200
        assert health.json()["scoring"]["reachable"] is False and health.json()["status"] == "degraded"
        assert process.alive
    finally:
        process.stop()
        server.stop()


def test_tracking_down_still_serves_and_counts_lost_logs(scoring: str, work_dir: Path) -> None:
    dead_tracking = f"http://127.0.0.1:{processes.free_port()}"
    process, url = processes.gateway(work_dir, scoring, dead_tracking, log_queue_size="2", tracking_timeout_s="1")
    try:
        for _ in range(6):
            assert recommend(url, {"title": "The Matrix"}).status_code == 200
        state = httpx.get(f"{url}/health").json()["request_log"]
        assert state["tracking_reachable"] is False
        assert state["written"] == 0
        assert state["lost"] >= 3 and state["lost"] + state["queued"] == 6
    finally:
        process.stop()


def test_tracking_outage_loses_no_request_log_once_it_returns(scoring: str, work_dir: Path, tmp_path: Path) -> None:
    port = processes.free_port()
    tracking = f"http://127.0.0.1:{port}"
    process, url = processes.gateway(
        work_dir, scoring, tracking, experiment="outage-requests", tracking_timeout_s="1", retry_backoff_s="0.2"
    )
    server = None
    try:
        for _ in range(20):  # tracking is down: every request is still answered
            assert recommend(url, {"title": "Heat", "top_n": 3}).status_code == 200
        state = httpx.get(f"{url}/health").json()["request_log"]
        assert state["tracking_reachable"] is False and state["queued"] == 20 and state["lost"] == 0
        server, _ = processes.mlflow_server(tmp_path, tmp_path, port=port)  # tracking comes back
        deadline = time.monotonic() + 90
        while httpx.get(f"{url}/health").json()["request_log"]["written"] < 20 and time.monotonic() < deadline:
            time.sleep(0.5)
        state = httpx.get(f"{url}/health").json()["request_log"]
        assert (state["written"], state["lost"], state["queued"], state["tracking_reachable"]) == (20, 0, 0, True)
        assert request_log_records(MlflowClient(tracking), "outage-requests", "Heat") == 20
    finally:
        process.stop()
        if server is not None:
            server.stop()


def test_richer_request_end_to_end(gateway: str) -> None:
    body = {
        "liked": ["The Matrix", {"title": "Toy Story", "year": 1995}, "Qwzx Unknown Film"],
        "disliked": ["Titanic"],
        "genres": ["Action", "Sci-Fi"],
        "year_min": 1990,
        "diversity": 0.3,
        "top_n": 6,
    }
    response = recommend(gateway, body)
    assert response.status_code == 200, response.text
    result = response.json()
    RecommendationResponse.model_validate(result)
    assert [film["title"] for film in result["liked"]] == ["The Matrix", "Toy Story"]
    assert result["unresolved"][0]["input"] == {"title": "Qwzx Unknown Film"}
    films = result["recommendations"]
    assert len(films) == 6
    assert all({"Action", "Sci-Fi"} & set(f["genres"]) and f["year"] >= 1990 for f in films)
    assert not {"The Matrix", "Toy Story", "Titanic"} & {f["title"] for f in films}
    sequel = next(f for f in films if f["title"] == "The Matrix Reloaded")
    assert "Keanu Reeves" in sequel["because"]["cast"] and "Lana Wachowski" in sequel["because"]["directors"]


def test_free_text_query(gateway: str) -> None:
    body = {"query": "a hacker learns that reality is a computer simulation", "top_n": 10}
    result = recommend(gateway, body).json()
    RecommendationResponse.model_validate(result)
    titles = [film["title"] for film in result["recommendations"]]
    assert any(title.startswith("The Matrix") for title in titles), titles
    assert all(film["because"]["query_match"]["field"] for film in result["recommendations"])


def test_only_unknown_films_is_404_with_what_was_not_understood(gateway: str) -> None:
    response = recommend(gateway, {"liked": ["Qwzx Unknown Film", "Zzyzx Plonk"]})
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "unknown_title" and len(body["unresolved"]) == 2


def test_same_film_liked_and_disliked_is_422(gateway: str) -> None:
    matrix = recommend(gateway, {"title": "The Matrix"}).json()["query"]["id"]
    response = recommend(gateway, {"liked": ["the matrix"], "disliked": [matrix]})
    assert response.status_code == 422 and "both liked and disliked" in response.json()["detail"]


def test_seed_request_is_the_plain_ranking(gateway: str) -> None:
    seed = recommend(gateway, {"title": "The Matrix", "top_n": 8}).json()
    matrix = seed["query"]["id"]
    as_liked = recommend(gateway, {"liked": [matrix], "top_n": 8}).json()
    assert [f["id"] for f in seed["recommendations"]] == [f["id"] for f in as_liked["recommendations"]]
    paged = recommend(gateway, {"title": "The Matrix", "top_n": 4, "offset": 4}).json()
    assert [f["id"] for f in paged["recommendations"]] == [f["id"] for f in seed["recommendations"]][4:]


def test_title_search(gateway: str) -> None:
    response = httpx.get(f"{gateway}/movies/search", params={"q": "matrx", "limit": 5})
    assert response.status_code == 200
    titles = [film["title"] for film in response.json()["results"]]
    assert titles[0] == "The Matrix" and "The Matrix Reloaded" in titles


def test_film_details(gateway: str) -> None:
    matrix = httpx.get(f"{gateway}/movies/search", params={"q": "The Matrix", "limit": 1}).json()["results"][0]
    response = httpx.get(f"{gateway}/movies/{matrix['id']}")
    assert response.status_code == 200
    film = response.json()
    assert (film["title"], film["year"]) == ("The Matrix", 1999) and "the Wachowskis" in film["writers"]
    missing = httpx.get(f"{gateway}/movies/1")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
