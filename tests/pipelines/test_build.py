"""The build entry point against a real tracking server: what it logs, registers, and refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines import build
from pipelines.spark import JAVA_MISSING
from tests.conftest import BuiltModel, mlflow_run

pytestmark = pytest.mark.slow


def test_build_run_logs_params_stats_and_samples(built_model: BuiltModel) -> None:
    client = MlflowClient(built_model.tracking_uri)
    run = client.get_run(built_model.run_id)
    assert run.info.status == "FINISHED"
    params, metrics = run.data.params, run.data.metrics
    assert params["catalog"].endswith("slice.parquet") and params["limit"] == "0"
    assert params["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert params["prior_weight"] == "0.025" and params["dense_weight"] == "0.5"
    assert metrics["n_films"] == 500
    assert metrics["catalog_n_films"] == 500
    assert metrics["people_vocabulary"] > 1000
    assert metrics["rows_skipped_empty_title"] == 0
    assert metrics["texts_over_window"] == 0
    assert metrics["encode_films_per_second"] > 0
    steps = ("catalog", "encode", "index", "people", "films", "neighbours", "save", "log_model")
    assert {f"seconds_{step}" for step in steps} <= metrics.keys()
    assert metrics["seconds_total"] >= sum(metrics[f"seconds_{step}"] for step in steps)
    artifacts = {item.path for item in client.list_artifacts(built_model.run_id)}
    assert {"sample_recommendations.json", "movie_text_sample.txt"} <= artifacts


def test_first_build_is_champion_and_challenger(built_model: BuiltModel) -> None:
    client = MlflowClient(built_model.tracking_uri)
    model = client.get_registered_model(built_model.name)
    assert model.aliases["champion"] == built_model.version
    assert model.aliases["challenger"] == built_model.version
    version = client.get_model_version(built_model.name, built_model.version)
    assert version.tags["build_run_id"] == built_model.run_id


def test_user_csv_builds_a_new_challenger_and_counts_skipped_rows(built_model: BuiltModel, tmp_path: Path) -> None:
    catalog = tmp_path / "films.csv"
    catalog.write_text(
        "id,title,year,genres,directors,cast\n"
        '1,Alien,1979,"Horror, Sci-Fi",Ridley Scott,"Sigourney Weaver, Tom Skerritt"\n'
        '2,Aliens,1986,"Action, Sci-Fi",James Cameron,"Sigourney Weaver, Michael Biehn"\n'
        "3,,1990,Drama,,\n"
        '4,Heat,1995,"Crime, Drama",Michael Mann,"Al Pacino, Robert De Niro"\n'
        '5,The Terminator,1984,"Action, Sci-Fi",James Cameron,"Arnold Schwarzenegger, Michael Biehn"\n'
    )
    # a cache of its own: tests leave the checkout's .cache/build (a developer's next build reuses it) alone
    result = mlflow_run(
        built_model.tracking_uri, "build", catalog=catalog, model_name="user-catalog", cache_dir=tmp_path / "cache"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(built_model.tracking_uri)
    version = client.get_model_version_by_alias("user-catalog", "challenger")
    run = client.get_run(version.run_id)
    assert run.data.metrics["rows_skipped_empty_title"] == 1
    assert run.data.metrics["n_films"] == 4
    assert client.get_registered_model("user-catalog").aliases["champion"] == version.version


def test_a_rebuild_after_a_small_change_carries_pools_over_and_matches_a_cold_computation(
    built_model: BuiltModel, slice_file: Path, tmp_path: Path
) -> None:
    """Films changed and added since the session's build: only those are encoded and searched, and the model's
    neighbour lists are exactly those computed from scratch over its own artifacts."""
    import mlflow
    import numpy as np
    import pandas as pd

    from model.neighbours import precompute_neighbours

    cache = tmp_path / "cache"
    shutil.copytree(slice_file.parent / "build-cache", cache)  # the session build's embeddings and pools
    movies = pd.read_parquet(slice_file)
    movies.at[0, "genres"] = [*movies.at[0, "genres"], "History"]
    added = movies.iloc[[10, 20]].assign(id=[900_001, 900_002], title=["New Film A", "New Film B"])
    # people of their own: shared ones would move those people up every other film's ranked cast (new texts)
    added["cast"], added["directors"] = [["New Actor A"], ["New Actor B"]], [["New Director"], ["New Director"]]
    catalog = tmp_path / "changed.parquet"
    pd.concat([movies, added], ignore_index=True).to_parquet(catalog, index=False)
    result = mlflow_run(built_model.tracking_uri, "build", catalog=catalog, cache_dir=cache, model_name="rebuilt")
    assert result.returncode == 0, result.stderr[-3000:]
    version = MlflowClient(built_model.tracking_uri).get_model_version_by_alias("rebuilt", "challenger")
    metrics = MlflowClient(built_model.tracking_uri).get_run(version.run_id).data.metrics
    assert metrics["embedding_cache_misses"] == 3
    assert metrics["dense_pools_carried_over"] >= 490  # of the 499 films whose vectors did not change
    engine = mlflow.pyfunc.load_model(f"models:/rebuilt/{version.version}").unwrap_python_model().engine
    logged = engine.neighbours
    assert logged is not None
    cold = precompute_neighbours(engine.films, engine.ranking, logged.rows.shape[1])
    np.testing.assert_array_equal(logged.rows, cold.rows)
    np.testing.assert_allclose(logged.scores, cold.scores, atol=1e-5)


BROKEN_CATALOGS = {
    "duplicate_ids": (b"id,title\n1,Alien\n1,Aliens\n", "duplicate id(s), for example [1]"),
    "missing_columns": (b"name,year\nAlien,1979\n", "has no 'title' column (columns found: name, year)"),
    "bad_encoding": ("id,title\n1,Amélie\n".encode("latin-1"), "could not be read: 'utf-8' codec can't decode"),
    "empty_file": (b"", "is an empty file"),
}


@pytest.mark.parametrize("kind", list(BROKEN_CATALOGS))
def test_bad_catalog_fails_clearly_and_registers_nothing(built_model: BuiltModel, tmp_path: Path, kind: str) -> None:
    content, message = BROKEN_CATALOGS[kind]
    catalog = tmp_path / f"{kind}.csv"
    catalog.write_bytes(content)
    client = MlflowClient(built_model.tracking_uri)
    before = client.search_model_versions(f"name='{built_model.name}'")
    champion = client.get_registered_model(built_model.name).aliases["champion"]
    result = mlflow_run(built_model.tracking_uri, "build", catalog=catalog)
    assert result.returncode != 0
    assert f"build failed, nothing registered: catalog {catalog}" in result.stderr, result.stderr[-2000:]
    assert message in result.stderr, result.stderr[-2000:]
    assert client.search_model_versions(f"name='{built_model.name}'") == before
    assert client.get_registered_model(built_model.name).aliases["champion"] == champion


def test_a_spark_build_without_java_fails_clearly_and_registers_nothing(
    built_model: BuiltModel, slice_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("pipelines.spark.java_available", lambda: False)
    client = MlflowClient(built_model.tracking_uri)
    before = client.search_model_versions(f"name='{built_model.name}'")
    code = build.main(["--catalog", str(slice_file), "--limit", "20", "--engine", "spark", "--cache-dir", ""])
    assert code == 2
    assert f"build failed, nothing registered: {JAVA_MISSING}" in capsys.readouterr().err
    assert client.search_model_versions(f"name='{built_model.name}'") == before
