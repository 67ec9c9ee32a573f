"""The request log against a real `mlflow server`: a tracking server that goes away and comes back, and an
experiment deleted under a running gateway."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from gateway.request_log import RequestLogger
from tests import processes
from tests.gateway.scoring_stub import scoring_stub
from tests.gateway.test_request_log import (
    mlflow_client_of_the_gateway,  # noqa: F401 - autouse here too
    record,
    runs_by_title,
    wait_for,
)
from tests.integration.conftest import logged_titles

pytestmark = pytest.mark.integration


def test_outage_keeps_what_fits_and_writes_it_when_tracking_returns(tmp_path: Path) -> None:
    port = processes.free_port()
    uri = f"http://127.0.0.1:{port}"
    log = RequestLogger(uri, "outage", queue_size=2, timeout_s=1, backoff_s=0.2)
    log.start()
    log.submit(record("first"))
    assert wait_for(lambda: log.tracking_reachable is False and log._queue.qsize() == 0)  # first is being retried
    for title in ["second", "third", "fourth", "fifth"]:
        log.submit(record(title))
    assert log.lost == 2 and log.pending == 3  # 1 retrying + 2 queued; the overflow is counted, not hidden
    server, _ = processes.mlflow_server(tmp_path, tmp_path, port=port)
    try:
        assert wait_for(lambda: log.written == 3, timeout=90)
        log.stop()
        assert set(runs_by_title(uri, "outage")) == {"first", "second", "third"}
        assert (log.lost, log.tracking_reachable) == (2, True)
    finally:
        server.stop()


def test_an_experiment_deleted_under_the_gateway_is_restored_or_created_again(tmp_path: Path) -> None:
    """Deleted in the MLflow UI: restored, with the runs it held. Deleted and garbage-collected (`mlflow gc`):
    created again. Either way every later request is logged, and /health accounts for every request."""
    server, tracking = processes.mlflow_server(tmp_path, tmp_path)
    client = MlflowClient(tracking)
    try:
        with scoring_stub() as stub:
            gateway, url = processes.gateway(
                tmp_path, stub.url, tracking, experiment="live", log_mode="per_request", retry_backoff_s="0.2"
            )
            try:
                recommend(url, "before")
                assert wait_for(lambda: request_log(url)["written"] == 1)
                created = client.get_experiment_by_name("live")
                first = created.experiment_id
                client.delete_experiment(first)
                for title in ["deleted 1", "deleted 2"]:
                    recommend(url, title)
                assert wait_for(lambda: settled(request_log(url)) == 3)
                assert client.get_experiment(first).lifecycle_stage == "active"
                assert sorted(logged_titles(client, "live")) == ["before", "deleted 1", "deleted 2"]

                client.delete_experiment(first)
                collect_garbage(tmp_path, tracking, first)
                assert client.get_experiment_by_name("live") is None
                for title in ["gone 1", "gone 2"]:
                    recommend(url, title)
                assert wait_for(lambda: settled(request_log(url)) == 5)
                assert client.get_experiment_by_name("live").creation_time > created.creation_time  # a new one
                assert sorted(logged_titles(client, "live")) == ["gone 1", "gone 2"]
                state = request_log(url)
                assert (state["written"], state["rejected"], state["lost"], state["queued"]) == (5, 0, 0, 0)
            finally:
                gateway.stop()
    finally:
        server.stop()


def recommend(url: str, title: str) -> None:
    response = httpx.post(f"{url}/movies/recommendations/", json={"title": title}, timeout=30)
    assert response.status_code == 200, response.text


def request_log(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=30).json()["request_log"]


def settled(state: dict[str, Any]) -> int:
    """Records the log is done with: written, or dropped and counted."""
    return state["written"] + state["rejected"] + state["lost"]


def collect_garbage(log_dir: Path, tracking: str, experiment_id: str) -> None:
    """`mlflow gc` of a deleted experiment, as an operator runs it against the server's store."""
    command = [str(processes.BIN / "mlflow"), "gc", "--backend-store-uri", f"sqlite:///{log_dir / 'mlflow.db'}",
               "--experiment-ids", experiment_id]  # fmt: skip
    env = processes.base_env(MLFLOW_TRACKING_URI=tracking)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
