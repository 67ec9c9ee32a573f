"""The stack on a tracking server that runs MLflow's basic-auth app, as `make up MLFLOW_AUTH=true` starts it: the build
pipeline, the gateway's supervisor (registry and downloads) and its request log sign in with MLFLOW_TRACKING_USERNAME
and MLFLOW_TRACKING_PASSWORD from their environment, and MLflow refuses whoever does not.

The model is built here through the authenticated server (`mlflow run . -e build`, the session's catalog slice and
embedding cache): the session's `built_model` lives on a server without authentication.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests import processes
from tests.conftest import MODEL_NAME, BuiltModel, mlflow_run
from tests.integration.conftest import logged_titles

pytestmark = pytest.mark.integration

ADMIN = ("stack-admin", "a-long-enough-test-password")  # MLflow wants 12 characters at least
EXPERIMENT = "auth-requests"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server --app-name basic-auth` whose admin is ADMIN; yields its URI."""
    data = tmp_path_factory.mktemp("auth-mlflow")
    process, uri = processes.mlflow_server(data, data, admin=ADMIN)
    yield uri
    process.stop()


@pytest.fixture(scope="module")
def signed_in() -> Iterator[None]:
    """The credentials exported, as a user does before `make up`: this process's MLflow client and every process
    started from here read them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
        yield


@pytest.fixture(scope="module")
def champion(auth_server: str, signed_in: None, slice_file: Path, built_model: BuiltModel) -> str:
    """The version `mlflow run . -e build` registers (as champion) on the authenticated server. After the session's
    own build (`built_model`), which must be the one that encodes: this one then finds every vector in the cache."""
    result = mlflow_run(auth_server, "build", catalog=slice_file, cache_dir=slice_file.parent / "build-cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return MlflowClient(auth_server).get_model_version_by_alias(MODEL_NAME, "champion").version


def start_gateway(tracking_uri: str, log_dir: Path, state_dir: Path) -> tuple[processes.Process, str]:
    """`python -m gateway serve` against `tracking_uri`, with this process's environment (credentials or none)."""
    return processes.gateway(
        log_dir,
        "http://127.0.0.1:1",  # unused when supervising
        tracking_uri,
        "serve",
        experiment=EXPERIMENT,
        model_name=MODEL_NAME,
        poll_s="0.5",
        serve_port="0",
        serve_start_timeout_s="150",
        state_dir=str(state_dir),
    )


def test_mlflow_refuses_requests_without_valid_credentials(auth_server: str) -> None:
    assert httpx.get(f"{auth_server}/health").status_code == 200  # what `make up` waits on stays open
    assert httpx.get(f"{auth_server}{SEARCH}").status_code == 401
    assert httpx.get(f"{auth_server}{SEARCH}", auth=(ADMIN[0], "not-the-password")).status_code == 401
    assert httpx.get(f"{auth_server}{SEARCH}", auth=ADMIN).status_code == 200


def test_the_stack_signs_in_to_build_serve_and_log(
    auth_server: str, champion: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    state_dir = tmp_path_factory.mktemp("auth-gateway-state")
    process, url = start_gateway(auth_server, state_dir, state_dir)
    try:
        ready = processes.wait_until(lambda: httpx.get(f"{url}/ready", timeout=10).status_code == 200, 300)
        assert ready, f"{httpx.get(f'{url}/health', timeout=10).json()}\n{process.tail()}"
        response = httpx.post(f"{url}/movies/recommendations/", json={"title": "The Matrix", "top_n": 3}, timeout=30)
        assert response.status_code == 200, response.text
        served = response.json()["model"]
        assert served == {"name": MODEL_NAME, "version": champion, "alias": "champion"}  # the registry was asked
        client = MlflowClient(auth_server)
        assert processes.wait_until(lambda: "The Matrix" in logged_titles(client, EXPERIMENT), 60), process.tail()
        # the writer marks tracking reachable just after its write returns: waited for
        assert processes.wait_until(lambda: request_log_state(url)["tracking_reachable"], 10) is True
    finally:
        process.stop()


def test_a_gateway_without_credentials_is_refused_by_the_registry(
    auth_server: str, champion: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    state_dir = tmp_path_factory.mktemp("anonymous-gateway-state")
    process, url = start_gateway(auth_server, state_dir, state_dir)
    try:
        error = processes.wait_until(
            lambda: httpx.get(f"{url}/health", timeout=10).json()["supervisor"]["registry_error"], 30
        )
        assert error and "401" in error, f"{error}\n{process.tail()}"
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 503  # nothing served that it could not fetch
    finally:
        process.stop()


def request_log_state(gateway: str) -> dict:
    return httpx.get(f"{gateway}/health", timeout=10).json()["request_log"]
