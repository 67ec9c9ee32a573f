"""The gateway's own behaviour, in process: validation, error shape, OpenAPI, upstream unreachable.

The scoring URL points at a loopback port where nothing listens (a real refused connection, not a mock);
request logs go to a real file-backed MLflow store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from gateway.app import create_app
from gateway.errors import SCORING_UNAVAILABLE
from gateway.settings import Settings
from tests.processes import free_port


@pytest.fixture
def tracking(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'requests.db'}"


@pytest.fixture
def client(tracking: str) -> Iterator[TestClient]:
    settings = Settings(scoring_url=f"http://127.0.0.1:{free_port()}", tracking_uri=tracking, experiment="api-tests")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "\u0000\u0001"},
        {"title": "x" * 301},
        {"title": 42},
        {"title": None},
        {"title": ["The Matrix"]},
        {"title": "The Matrix", "top_n": 0},
        {"title": "The Matrix", "top_n": 101},
        {"title": "The Matrix", "top_n": -1},
        {"title": "The Matrix", "top_n": 5.5},
        {"title": "The Matrix", "top_n": "5"},
        {"title": "The Matrix", "top_n": True},
        {"title": "The Matrix", "top_n": 10**30},
        {"title": "The Matrix", "year": 1500},
        {"title": "The Matrix", "year": "1999"},
        {"title": "The Matrix", "topn": 5},
    ],
)
def test_invalid_bodies_are_422_in_the_error_shape(client: TestClient, body: dict) -> None:
    response = client.post("/movies/recommendations/", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["code"] == "invalid_request"
    assert isinstance(payload["detail"], str) and payload["detail"]
    assert payload["errors"] and all(set(e) == {"field", "message"} for e in payload["errors"])


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'{"title": NaN}', b'{"title": "x", "top_n": Infinity}'])
def test_malformed_json_is_422(client: TestClient, raw: bytes) -> None:
    response = client.post("/movies/recommendations/", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    wrong = client.get("/movies/recommendations/")
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")


def test_unreachable_scoring_server_is_503_and_logged(client: TestClient, tracking: str) -> None:
    response = client.post("/movies/recommendations/", json={"title": "The Matrix", "top_n": 3})
    assert response.status_code == 503
    assert response.json() == {"detail": SCORING_UNAVAILABLE, "code": "scoring_unavailable"}
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["scoring"]["reachable"] is False
    client.app.state.request_log.stop()  # drain
    runs = MlflowClient(tracking).search_runs(
        [MlflowClient(tracking).get_experiment_by_name("api-tests").experiment_id]
    )
    assert [(r.data.params["title"], r.data.tags["status"], r.data.tags["http_status"]) for r in runs] == [
        ("The Matrix", "scoring_unavailable", "503")
    ]
    assert runs[0].data.metrics["n_returned"] == 0


def test_openapi_documents_the_request_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/movies/recommendations/"]["post"]
    assert {"200", "404", "422", "502", "503", "504"} <= set(operation["responses"])
    request_schema = spec["components"]["schemas"]["RecommendationRequest"]
    assert request_schema["properties"]["top_n"]["maximum"] == 100
    assert request_schema["examples"][0] == {"title": "The Matrix", "top_n": 5}
    assert client.get("/docs").status_code == 200
