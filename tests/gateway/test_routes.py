"""The API against a stand-in scoring server in this process: how the model's answers become responses, errors and
the X-Model-* headers, and how a switch of scoring server (the supervisor's router call) relabels the answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.errors import FILM_NOT_FOUND, SCORING_ERROR, UNKNOWN_TITLE
from gateway.settings import Settings
from tests.gateway.scoring_stub import OK, Stub, scoring_stub


@pytest.fixture
def stub() -> Iterator[Stub]:
    with scoring_stub() as running:
        yield running


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry that holds no version of the stand-in's model."""
    return f"sqlite:///{tmp_path_factory.mktemp('routes') / 'mlflow.db'}"


@pytest.fixture
def client(stub: Stub, tracking: str) -> Iterator[TestClient]:
    settings = Settings(scoring_url=stub.url, tracking_uri=tracking, request_log=False)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_a_recommendation_passes_the_models_record_on_and_names_the_model(client: TestClient, stub: Stub) -> None:
    response = client.post("/movies/recommendations/", json={"liked": [7, "Heat", {"title": "Alien", "year": 1979}]})
    assert response.status_code == 200
    body = response.json()
    assert [film["title"] for film in body["recommendations"]] == ["Ronin"]
    assert body["model"] == {"name": "movie-recommender", "version": None, "alias": "champion"}  # no registry holds it
    assert response.headers["x-model-name"] == "movie-recommender" and "x-model-version" not in response.headers
    liked = [{"id": 7}, {"title": "Heat"}, {"title": "Alien", "year": 1979}]
    assert stub.rows("recommend") == [{"top_n": 5, "offset": 0, "liked": liked}]


def test_a_query_the_model_finds_invalid_is_422_with_its_reason(client: TestClient, stub: Stub) -> None:
    reason = "the same film is both liked and disliked: Heat"
    stub.records["recommend"] = {"status": "invalid", "reason": reason}
    response = client.post("/movies/recommendations/", json={"liked": ["Heat"], "disliked": [7]})
    assert (response.status_code, response.json()) == (422, {"detail": reason, "code": "invalid_request"})


def test_an_unknown_title_is_404_with_suggestions(client: TestClient, stub: Stub) -> None:
    suggestion = {"id": 7, "title": "Heat", "year": 1995, "genres": ["Crime"]}
    unresolved = [{"field": "title", "input": {"title": "Haet"}, "suggestions": [suggestion]}]
    stub.records["recommend"] = {"status": "unknown_title", "suggestions": [suggestion], "unresolved": unresolved}
    response = client.post("/movies/recommendations/", json={"title": "Haet"})
    assert response.status_code == 404
    assert response.json() == {
        "detail": UNKNOWN_TITLE, "code": "unknown_title", "suggestions": [suggestion], "unresolved": unresolved
    }  # fmt: skip
    assert response.headers["x-model-name"] == "movie-recommender"  # the model answered


def test_a_failing_model_is_502_and_its_stack_trace_stays_in_the_log(client: TestClient, stub: Stub) -> None:
    stub.failure = "secret internals"
    response = client.post("/movies/recommendations/", json={"title": "Heat"})
    assert (response.status_code, response.json()) == (502, {"detail": SCORING_ERROR, "code": "scoring_error"})
    assert "secret" not in response.text


def test_search_and_film_details(client: TestClient, stub: Stub) -> None:
    found = client.get("/movies/search", params={"q": "heat", "limit": 3})
    assert found.status_code == 200 and found.json()["results"][0]["title"] == "Heat"
    assert stub.rows("search") == [{"title": "heat", "top_n": 3}]
    film = client.get("/movies/7")
    assert film.status_code == 200 and film.json()["directors"] == ["Michael Mann"]
    stub.records["film"] = {"status": "not_found"}
    missing = client.get("/movies/8")
    assert (missing.status_code, missing.json()["code"], missing.json()["detail"]) == (404, "not_found", FILM_NOT_FOUND)
    assert missing.headers["x-model-name"] == "movie-recommender"


def test_a_switch_sends_new_requests_to_the_new_server_labelled_with_its_version(client: TestClient) -> None:
    with scoring_stub() as new:
        previous = client.app.state.scoring.switch(new.url, "movie-recommender", "7", "run-7")
        response = client.post("/movies/recommendations/", json={"title": "Heat"})
        assert response.headers["x-model-version"] == "7" and response.json()["model"]["version"] == "7"
        assert new.rows("recommend") == [{"title": "Heat", "top_n": 5, "offset": 0}]
        health = client.get("/health").json()
        assert health["scoring"] == {"url": new.url, "reachable": True} and health["model"]["version"] == "7"
        assert health["status"] == "ok" and health["supervisor"] is None
        client.portal.call(previous.drain, 1.0)  # nothing in flight there: returns at once


def test_ready_waits_for_a_scoring_server(client: TestClient, stub: Stub) -> None:
    served = {"name": "movie-recommender", "version": None, "alias": "champion"}
    assert client.get("/ready").json() == {"ready": True, "model": served}
    client.app.state.scoring.switch("http://127.0.0.1:9", "movie-recommender", "8", None)  # nothing listens there
    assert (client.get("/ready").status_code, client.get("/ready").json()["code"]) == (503, "not_ready")
    assert OK["info"]["model_name"] == "movie-recommender"


def test_the_page_and_its_files_are_served_by_the_gateway(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]  # the browser loads nothing from elsewhere
    for asset, kind in [("/static/app.js", "javascript"), ("/static/style.css", "text/css")]:
        response = client.get(asset)
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert asset in page.text


def test_a_version_the_registry_does_not_hold_is_not_asked_for_on_every_request(client: TestClient, stub: Stub) -> None:
    for _ in range(5):
        assert client.post("/movies/recommendations/", json={"title": "Heat"}).status_code == 200
    assert len(stub.rows("info")) == 1  # asked at start; again only after IDENTITY_RETRY_S
