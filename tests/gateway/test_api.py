"""The gateway's own behaviour, in process: validation, error shape, OpenAPI, upstream unreachable.

The scoring URL points at a loopback port where nothing listens (a real refused connection, not a mock);
request logs go to a real file-backed MLflow store.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT
from mlflow.tracking import MlflowClient

from gateway.app import create_app
from gateway.errors import BODY_NOT_UTF8, SCORING_UNAVAILABLE
from gateway.settings import Settings
from model import contract
from tests.processes import REPO, free_port


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('api') / 'requests.db'}"


@pytest.fixture(scope="module")
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
        {"title": "The Matrix " * 1000},  # 11,000 characters
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
    assert wrong.headers["allow"] == "POST"


def test_unreachable_scoring_server_is_503_and_logged(client: TestClient, tracking: str) -> None:
    response = client.post("/movies/recommendations/", json={"title": "Unreachable Matrix", "top_n": 3})
    assert response.status_code == 503
    assert response.json() == {"detail": SCORING_UNAVAILABLE, "code": "scoring_unavailable"}
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["scoring"]["reachable"] is False
    log = client.app.state.request_log
    deadline = time.monotonic() + 30
    while log.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    tracking_client = MlflowClient(tracking)
    experiment = tracking_client.get_experiment_by_name("api-tests").experiment_id
    runs = tracking_client.search_runs([experiment], "params.title = 'Unreachable Matrix'")
    assert [(r.data.params["top_n"], r.data.tags["status"], r.data.tags["http_status"]) for r in runs] == [
        ("3", "scoring_unavailable", "503")
    ]
    assert runs[0].data.metrics["n_returned"] == 0


def test_openapi_documents_the_request_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/movies/recommendations/"]["post"]
    assert {"200", "404", "422", "502", "503", "504"} <= set(operation["responses"])
    request_schema = spec["components"]["schemas"]["RecommendationRequest"]
    # the bounds are the contract's, documented for clients
    assert (
        request_schema["properties"]["top_n"] | {"minimum": 1, "maximum": contract.MAX_TOP_N}
        == (request_schema["properties"]["top_n"])
    )
    assert request_schema["properties"]["liked"]["anyOf"][0]["maxItems"] == contract.MAX_FILMS
    assert request_schema["properties"]["title"]["anyOf"][0]["maxLength"] == contract.MAX_TITLE_CHARS
    search = {p["name"]: p["schema"] for p in spec["paths"]["/movies/search"]["get"]["parameters"]}
    assert search["limit"]["maximum"] == contract.MAX_SEARCH and search["q"]["maxLength"] == contract.MAX_TITLE_CHARS
    assert request_schema["examples"][0] == {"title": "The Matrix", "top_n": 5}
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"top_n": 5}, contract.NEEDS_A_QUERY),
        ({"title": "   "}, contract.NO_VISIBLE_TEXT),
        ({"title": "x" * 301}, contract.TITLE_TOO_LONG),
        ({"title": "Heat", "top_n": 101}, contract.TOP_N_OUT_OF_RANGE),
        ({"title": "Heat", "year": 1500}, contract.YEAR_OUT_OF_RANGE),
        ({"title": "Heat", "year_min": 2000, "year_max": 1990}, contract.YEARS_REVERSED),
        ({"liked": [""]}, contract.EMPTY_FILM_REF),
        ({"liked": ["x"] * 51}, contract.TOO_MANY_FILMS),
        ({"liked": [{"title": "x" * 301}]}, contract.TITLE_TOO_LONG),
        ({"query": "   "}, contract.NO_VISIBLE_TEXT),
        ({"query": "x" * 1001}, contract.QUERY_TOO_LONG),
        ({"title": "Heat", "genres": [""]}, contract.BAD_GENRE),
        ({"title": "Heat", "exclude_genres": ["x"] * 31}, contract.TOO_MANY_GENRES),
        ({"title": "Heat", "exclude": ["x"] * 1001}, contract.TOO_MANY_EXCLUDED),
        ({"title": "Heat", "within": list(range(10_001))}, contract.TOO_MANY_WITHIN),
        ({"title": "Heat", "within": [-1]}, contract.ID_OUT_OF_RANGE),
        ({"title": "Heat", "diversity": 1.5}, contract.DIVERSITY_OUT_OF_RANGE),
        ({"title": "Heat", "diversity": -0.1}, contract.DIVERSITY_OUT_OF_RANGE),
        ({"title": "Heat", "offset": 901}, contract.OFFSET_OUT_OF_RANGE),
        ({"title": "Heat", "offset": -1}, contract.OFFSET_OUT_OF_RANGE),
    ],
)
def test_the_contracts_reason_is_the_422s_message(client: TestClient, body: dict, message: str) -> None:
    response = client.post("/movies/recommendations/", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload == {
        "detail": message, "code": "invalid_request", "errors": [{"field": "body", "message": message}]
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"liked": [{"id": 7}]},  # films by id are plain integers
        {"liked": [True]},
        {"liked": [5.5]},
        {"liked": [{"title": "Heat", "year": 1995, "extra": 1}]},
        {"liked": "Heat"},
    ],
)
def test_films_of_the_wrong_json_type_are_422_naming_the_field(client: TestClient, body: dict) -> None:
    response = client.post("/movies/recommendations/", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request" and response.json()["detail"].startswith("liked")


def test_a_valid_richer_request_reaches_the_scoring_server(client: TestClient) -> None:
    # liked and disliked naming one film is the model's to find once it resolved the titles (the gateway cannot)
    assert client.post("/movies/recommendations/", json={"liked": ["Heat"], "disliked": ["heat"]}).status_code == 503
    body = {
        "liked": ["Heat", 83495, {"title": "Alien", "year": 1979}],
        "disliked": ["Titanic"],
        "query": "heist",
        "genres": ["Crime"],
        "exclude_genres": ["Documentary"],
        "year_min": 1980,
        "year_max": 2000,
        "exclude": [1, "Ronin"],
        "within": [1, 2, 3],
        "diversity": 0.4,
        "offset": 5,
    }
    assert client.post("/movies/recommendations/", json=body).status_code == 503  # valid; upstream is down


def test_request_maps_film_references_for_the_model() -> None:
    from gateway.schemas import RecommendationRequest

    request = RecommendationRequest(liked=["Heat", 7, {"title": "Alien", "year": 1979}], title="Up")
    assert request.model_inputs() == {
        "title": "Up",
        "top_n": 5,
        "offset": 0,
        "liked": [{"title": "Heat"}, {"id": 7}, {"title": "Alien", "year": 1979}],
    }


def test_openapi_has_an_example_for_every_request_field(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["RecommendationRequest"]
    missing = [name for name, field in schema["properties"].items() if not field.get("examples")]
    assert missing == []
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/movies/search", "/movies/{film_id}"} <= set(paths)


@pytest.mark.parametrize("url", ["/movies/search?q=", "/movies/search?q=%20", "/movies/search?q=x&limit=0",
                                 "/movies/search?q=x&limit=51", "/movies/-1", "/movies/abc"])  # fmt: skip
def test_search_and_film_validate_before_calling_upstream(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_bodies_over_64_kib_are_413(client: TestClient) -> None:
    body = b'{"title": "' + b"x" * (64 * 1024) + b'"}'
    response = client.post("/movies/recommendations/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_cors_is_closed_by_default(client: TestClient) -> None:
    preflight = client.options(
        "/movies/recommendations/",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


@pytest.fixture(scope="module")
def guarded(tracking: str) -> Iterator[TestClient]:
    settings = Settings(
        scoring_url=f"http://127.0.0.1:{free_port()}",
        tracking_uri=tracking,
        experiment="api-tests",
        api_key="s3cret-key",
        cors_origins=["https://app.example"],
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": "s3cret-ke"}, {"x-api-key": ""}])
def test_api_key_is_required_when_set(guarded: TestClient, headers: dict) -> None:
    for response in (
        guarded.post("/movies/recommendations/", json={"title": "Heat"}, headers=headers),
        guarded.get("/movies/search?q=heat", headers=headers),
        guarded.get("/movies/7", headers=headers),
    ):
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"


def test_the_right_key_passes_and_health_stays_open(guarded: TestClient) -> None:
    response = guarded.post("/movies/recommendations/", json={"title": "Heat"}, headers={"x-api-key": "s3cret-key"})
    assert response.status_code == 503  # past the key; the scoring server is not running here
    assert guarded.get("/health").status_code == 200


def test_the_key_header_is_documented_exactly_where_it_is_checked(client: TestClient, guarded: TestClient) -> None:
    # An open gateway solves no key dependency per request; one with GATEWAY_API_KEY checks and documents it.
    for test_client, expected in ((client, set()), (guarded, {"x-api-key"})):
        paths = test_client.get("/openapi.json").json()["paths"]
        routes = (("/movies/recommendations/", "post"), ("/movies/search", "get"), ("/movies/{film_id}", "get"))
        for path, method in routes:
            headers = {p["name"] for p in paths[path][method].get("parameters", []) if p["in"] == "header"}
            assert headers == expected, (path, headers)
        assert "parameters" not in paths["/health"]["get"]


def test_configured_cors_origin_is_allowed(guarded: TestClient) -> None:
    preflight = guarded.options(
        "/movies/recommendations/",
        headers={"origin": "https://app.example", "access-control-request-method": "POST"},
    )
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"


def test_chunked_bodies_over_64_kib_are_413_too(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"title": "'
        for _ in range(70):
            yield b"x" * 1024
        yield b'"}'

    response = client.post("/movies/recommendations/", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def documented_errors() -> set[tuple[int, str]]:
    """(status, code) of every row of the README's error table, the list clients are promised."""
    rows = re.findall(r"^\| (\d{3}) \| `(\w+)` \|", (REPO / "README.md").read_text(), flags=re.MULTILINE)
    return {(int(status), code) for status, code in rows}


JSON = {"content-type": "application/json"}
RECOMMEND = "/movies/recommendations/"


@pytest.mark.parametrize(
    ("gateway", "method", "url", "body", "headers"),
    [
        ("client", "POST", RECOMMEND, '{"title": "Amélie"}'.encode("latin-1"), JSON),  # not UTF-8
        ("client", "POST", RECOMMEND, b'\xff\xfe{"title": 1}', JSON),
        ("client", "POST", RECOMMEND, '{"title": "Amélie"}'.encode("latin-1"),
         {"content-type": "application/json; charset=latin-1"}),  # JSON is UTF-8 whatever the header says
        ("client", "POST", RECOMMEND, b'{"title": "\xff"}', {"content-type": "application/vnd.api+json"}),
        ("client", "POST", RECOMMEND, b"[" * 30_000 + b"]" * 30_000, JSON),  # too deep for the JSON parser
        ("client", "POST", RECOMMEND, b"{not json", JSON),
        ("client", "POST", RECOMMEND, b'{"title": 42}', JSON),
        ("client", "POST", RECOMMEND, b'{"title": "Heat"}', {"content-type": "text/plain"}),
        ("client", "POST", RECOMMEND, b"--x\r\nbroken", {"content-type": "multipart/form-data; boundary=x"}),
        ("client", "POST", RECOMMEND, b"title=Heat", {"content-type": "application/x-www-form-urlencoded"}),
        ("client", "POST", RECOMMEND, b"{}", {**JSON, "content-length": "many"}),
        ("client", "POST", RECOMMEND, b"x" * (64 * 1024 + 1), JSON),
        ("client", "PUT", RECOMMEND, b"{}", JSON),
        ("client", "GET", "/nope", b"", {}),
        ("client", "GET", "/movies/abc", b"", {}),
        ("client", "GET", "/movies/search?q=", b"", {}),
        ("guarded", "GET", "/movies/7", b"", {}),
    ],
)  # fmt: skip
def test_every_client_error_has_a_documented_code(
    request: pytest.FixtureRequest, gateway: str, method: str, url: str, body: bytes, headers: dict[str, str]
) -> None:
    """Each way a request can be refused before it reaches the model, the framework's own refusals included."""
    response = request.getfixturevalue(gateway).request(method, url, content=body, headers=headers)
    assert 400 <= response.status_code < 500
    payload = response.json()
    assert (response.status_code, payload["code"]) in documented_errors(), payload
    assert isinstance(payload["detail"], str) and payload["detail"]


def test_a_body_that_is_not_utf8_is_422_saying_so(client: TestClient) -> None:
    body = '{"title": "Amélie"}'.encode("latin-1")
    response = client.post(RECOMMEND, content=body, headers=JSON)
    assert response.status_code == 422
    assert response.json() == {
        "detail": BODY_NOT_UTF8, "code": "invalid_request", "errors": [{"field": "body", "message": BODY_NOT_UTF8}]
    }  # fmt: skip


@pytest.mark.parametrize(("explicit", "timeout_s"), [(None, 3), ("30", 30)])
def test_mlflow_calls_of_the_whole_process_give_up_without_the_request_log(
    tracking: str, explicit: str | None, timeout_s: int
) -> None:
    """The supervisor's registry client shares the process: with the request log off, MLflow's client still
    stops after GATEWAY_TRACKING_TIMEOUT_S (rounded up) without retrying for minutes; MLFLOW_* settings win."""
    before = dict(os.environ)
    os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
    os.environ.pop("MLFLOW_HTTP_REQUEST_TIMEOUT", None)
    if explicit is not None:
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = explicit
    settings = Settings(
        scoring_url=f"http://127.0.0.1:{free_port()}", tracking_uri=tracking, request_log=False, tracking_timeout_s=2.5
    )
    try:
        with TestClient(create_app(settings)):
            assert (MLFLOW_HTTP_REQUEST_TIMEOUT.get(), MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()) == (timeout_s, 0)
    finally:
        os.environ.clear()
        os.environ.update(before)
