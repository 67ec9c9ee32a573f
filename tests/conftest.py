"""Shared fixtures: a real MLflow tracking server and one model built from a real catalog slice.

The slice is 500 films of the default catalog: the 400 most reviewed from 1990-1998 (so that about 250 of them
meet MovieLens-100k, for the quality tests) and the 100 most reviewed from 1999-2003 (The Matrix and both sequels).
It is written as a Parquet file and built once per session through the real MLproject, as a user would
(`mlflow run . -e build -P catalog=slice.parquet`), encoded with the real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from model.catalog import validate_catalog
from tests import postgres, processes

SLICE = 500
MODEL_NAME = "movie-recommender"


@dataclass(frozen=True)
class BuiltModel:
    tracking_uri: str
    name: str
    version: str
    run_id: str


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def tracking_uri(work_dir: Path) -> Iterator[str]:
    """A real `mlflow server` for the session; MLFLOW_TRACKING_URI points at it while tests run."""
    server, uri = processes.mlflow_server(work_dir, work_dir)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous
    server.stop()


def mlflow_run(tracking_uri: str, entry_point: str, **params: object) -> subprocess.CompletedProcess[str]:
    """`mlflow run . -e ENTRY --env-manager local -P k=v ...` as a user runs it."""
    command = [str(processes.BIN / "mlflow"), "run", ".", "-e", entry_point, "--env-manager", "local"]
    command += ["--experiment-name", "test-builds"]
    if entry_point == "build":  # a test's build learns from the events it names, never from a developer's store
        params.setdefault("events", "none")
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    env = processes.base_env(MLFLOW_TRACKING_URI=tracking_uri)
    return subprocess.run(command, cwd=processes.REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def slice_file(work_dir: Path, catalog_slice: pd.DataFrame) -> Path:
    path = work_dir / "slice.parquet"
    catalog_slice.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def built_model(tracking_uri: str, slice_file: Path) -> BuiltModel:
    """Version 1 of the model, built from the catalog slice by `mlflow run . -e build`."""
    # a cache of the session's own: the build really encodes, whatever earlier runs left in .cache/build
    result = mlflow_run(tracking_uri, "build", catalog=slice_file, cache_dir=slice_file.parent / "build-cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    client = MlflowClient(tracking_uri)
    version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    return BuiltModel(tracking_uri, MODEL_NAME, version.version, version.run_id)


@pytest.fixture(scope="session")
def catalog_slice() -> pd.DataFrame:
    """The 500 films of the built model, as a validated catalog (no encoding)."""
    from model.catalog import limit_catalog, load_catalog

    movies = load_catalog().movies
    nineties = limit_catalog(movies[movies["year"].between(1990, 1998)].reset_index(drop=True), 400)
    matrix_years = limit_catalog(movies[movies["year"].between(1999, 2003)].reset_index(drop=True), SLICE - 400)
    return pd.concat([nineties, matrix_years], ignore_index=True)


def hashing_vectors(texts: list[str], dim: int = 64) -> np.ndarray:
    """A deterministic stand-in encoder for pure-logic tests: bag of hashed words, L2-normalised."""
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            digest = hashlib.sha1(word.encode()).digest()
            vectors[row, digest[0] % dim] += 1.0 if digest[1] % 2 else -1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def tiny_catalog(rows: list[dict[str, object]]) -> pd.DataFrame:
    return validate_catalog(pd.DataFrame(rows)).movies


@pytest.fixture(scope="module")
def cluster() -> Iterator[postgres.Cluster]:
    """A running throwaway PostgreSQL cluster for the module; the test fails (never skips) where PostgreSQL is not
    installed."""
    try:
        cluster = postgres.start_cluster()
    except FileNotFoundError as error:
        pytest.fail(str(error), pytrace=False)
    yield cluster
    cluster.stop()
