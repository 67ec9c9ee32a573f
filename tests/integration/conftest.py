"""Fixtures of the integration tests: the real scoring server and gateway, for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from gateway.request_log import logged_requests
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
    logged = logged_requests(client, experiment)
    return len(logged) if title is None else int((logged["title"] == title).sum())
