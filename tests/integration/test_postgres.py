"""The stack on a tracking server whose backend store is PostgreSQL, as `make up MLFLOW_BACKEND_STORE_URI=postgresql://...`
runs it: build, evaluate and promote through `mlflow run`, serve the champion, and log a request through the gateway.

The cluster is a throwaway one (tests/postgres.py). Only the tracking server knows the database and its password;
the pipelines, the scoring server and the gateway are given the tracking URI alone. Every check that matters is also
read back from PostgreSQL itself, so that nothing here passes on sqlite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests import postgres, processes
from tests.conftest import MODEL_NAME, BuiltModel, mlflow_run
from tests.integration.conftest import logged_titles

pytestmark = pytest.mark.integration

DATABASE = "mlflow"
EXPERIMENT = "postgres-requests"


@pytest.fixture(scope="module")
def tracking_server(cluster: postgres.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on the cluster's `mlflow` database (URI and password from its environment); artifacts
    proxied to a local folder. Yields its URI."""
    data = tmp_path_factory.mktemp("postgres-mlflow")
    store = cluster.create_database(DATABASE)
    process, uri = processes.mlflow_server(data, data, backend_store_uri=store, store_env=cluster.env)
    yield uri
    process.stop()


@pytest.fixture(scope="module")
def champion(tracking_server: str, slice_file: Path, built_model: BuiltModel) -> str:
    """The version `mlflow run . -e build` registers on the PostgreSQL-backed server, evaluated and promoted through
    the quality gate. After the session's own build (`built_model`), which must be the one that encodes: this one
    then finds every vector in the session's cache."""
    result = mlflow_run(tracking_server, "build", catalog=slice_file, cache_dir=slice_file.parent / "build-cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    client = MlflowClient(tracking_server)
    version = client.get_model_version_by_alias(MODEL_NAME, "challenger").version
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == version  # the first one is both
    for entry_point, params in (("evaluate", {"model_uri": f"models:/{MODEL_NAME}@challenger"}), ("promote", {})):
        result = mlflow_run(tracking_server, entry_point, **params)
        assert result.returncode == 0, f"{entry_point}: {result.stdout[-3000:]}{result.stderr[-5000:]}"
    return version


def test_the_registry_is_in_postgresql(cluster: postgres.Cluster, champion: str) -> None:
    aliases = cluster.query(DATABASE, "SELECT alias, version FROM registered_model_aliases WHERE name = %s", MODEL_NAME)
    assert sorted(aliases) == [("challenger", int(champion)), ("champion", int(champion))]
    tags = dict(
        cluster.query(
            DATABASE,
            "SELECT key, value FROM model_version_tags WHERE name = %s AND version = %s",
            MODEL_NAME,
            int(champion),
        )
    )
    assert "quality.p1_hr10" in tags  # written by evaluate, read by promote's gate
    assert tags["previous_champion"] == champion and "promotion_forced" not in tags
    locations = cluster.query(DATABASE, "SELECT artifact_location FROM experiments WHERE name = 'test-builds'")
    assert locations and locations[0][0].startswith("mlflow-artifacts:")  # uploads go through the server's proxy


def test_a_request_is_served_and_logged_in_postgresql(
    cluster: postgres.Cluster, tracking_server: str, champion: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = tmp_path_factory.mktemp("postgres-stack")
    scoring, scoring_url = processes.model_server(logs, tracking_server, f"models:/{MODEL_NAME}@champion")
    try:
        gateway, url = processes.gateway(logs, scoring_url, tracking_server, experiment=EXPERIMENT)
        try:
            response = httpx.post(
                f"{url}/movies/recommendations/", json={"title": "The Matrix", "top_n": 3}, timeout=30
            )
            assert response.status_code == 200, response.text
            assert response.json()["model"] == {"name": MODEL_NAME, "version": champion, "alias": "champion"}
            client = MlflowClient(tracking_server)
            assert processes.wait_until(lambda: "The Matrix" in logged_titles(client, EXPERIMENT), 60), gateway.tail()
        finally:
            gateway.stop()
    finally:
        scoring.stop()
    runs = cluster.query(
        DATABASE,
        "SELECT count(*) FROM runs JOIN experiments USING (experiment_id) WHERE experiments.name = %s",
        EXPERIMENT,
    )
    assert runs[0][0] >= 1
