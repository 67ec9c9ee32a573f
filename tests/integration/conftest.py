"""Fixtures of the integration tests: the real scoring server and gateway, for the whole session."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from gateway.request_runs import GROUPED, REQUESTS_TABLE
from tests import processes
from tests.conftest import BuiltModel

EXPERIMENT = "integration-requests"


@pytest.fixture(scope="session")
def scoring(built_model: BuiltModel, work_dir: Path) -> Iterator[str]:
    server, url = processes.model_server(work_dir, built_model.tracking_uri, f"models:/{built_model.name}@champion")
    yield url
    server.stop()


@pytest.fixture(scope="session")
def gateway(scoring: str, built_model: BuiltModel, work_dir: Path) -> Iterator[str]:
    process, url = processes.gateway(work_dir, scoring, built_model.tracking_uri, experiment=EXPERIMENT)
    yield url
    process.stop()


@pytest.fixture(scope="session")
def gateway_schema(gateway: str) -> Any:
    import schemathesis

    return schemathesis.openapi.from_url(f"{gateway}/openapi.json")


def request_log_records(client: MlflowClient, experiment: str, title: str | None = None) -> int:
    """Requests (for `title`, or all) in a request-log experiment: a per-request run each, or a row of a grouped
    run's table."""
    titles = logged_titles(client, experiment)
    return len(titles) if title is None else titles.count(title)


def logged_titles(client: MlflowClient, experiment: str) -> list[str]:
    """The title of every request the log holds in `experiment`, from its runs' params and its grouped runs' tables."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    titles = []
    for run in client.search_runs([found.experiment_id], max_results=10_000):
        if run.data.tags.get("status") == GROUPED:
            titles += list(requests_table(client, run.info.run_id)["title"])
        else:
            titles.append(run.data.params.get("title", ""))
    return titles


def requests_table(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """A grouped run's table of requests, as `MlflowClient.log_table` wrote it (pandas' split orientation)."""
    with tempfile.TemporaryDirectory() as folder:
        return pd.read_json(client.download_artifacts(run_id, REQUESTS_TABLE, folder), orient="split", dtype=False)
