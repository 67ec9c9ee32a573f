"""Fixtures of the integration tests: the real scoring server and gateway, for the whole session."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

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


def requests_table(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """A grouped request-log run's `requests.json` (as `MlflowClient.log_table` writes it: columns and data)."""
    with tempfile.TemporaryDirectory() as directory:
        path = client.download_artifacts(run_id, "requests.json", directory)
        table = json.loads(Path(path).read_text())
    return pd.DataFrame(table["data"], columns=table["columns"])


def request_log_records(client: MlflowClient, experiment: str, title: str | None = None) -> int:
    """Requests (for `title`, or all) in a request-log experiment: a per-request run each, or a row of a grouped
    run's table."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    count = 0
    for run in client.search_runs([found.experiment_id], max_results=50_000):
        if run.data.tags.get("status") == "grouped":
            table = requests_table(client, run.info.run_id)
            count += len(table) if title is None else int((table["title"] == title).sum())
        elif title is None or run.data.params.get("title") == title:
            count += 1
    return count
