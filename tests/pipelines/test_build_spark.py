"""`mlflow run . -e build -P engine=spark`: the catalog embedded by Spark's executors makes the same model as the
session's build with the local engine, from the same catalog slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from model.schema import FilmRef, Query
from pipelines.engines import load_engine
from pipelines.spark_vectors import PARQUET_NAME
from tests.conftest import SLICE, BuiltModel, mlflow_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TITLES = ("The Matrix", "Heat", "Toy Story", "Fargo", "Titanic", "Seven", "Jurassic Park", "Monsters, Inc.")
# ranked live from the vectors (several films, filters), not looked up in the precomputed neighbour lists
LIVE = (
    Query(liked=[FilmRef(title="Heat"), FilmRef(title="Fargo")], top_n=10),
    Query(title="The Matrix", genres=["Action"], year_max=1999, top_n=10),
    Query(title="Toy Story", diversity=0.5, top_n=10),
)


def test_spark_engine_builds_the_same_model_as_the_local_engine(
    built_model: BuiltModel, slice_file: Path, java: None, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"  # empty: Spark embeds every film
    result = mlflow_run(
        built_model.tracking_uri, "build", catalog=slice_file, engine="spark", model_name="spark-built", cache_dir=cache
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    client = MlflowClient(built_model.tracking_uri)
    version = client.get_model_version_by_alias("spark-built", "challenger")
    run = client.get_run(version.run_id)
    assert run.data.params["engine"] == "spark"
    assert run.data.tags["encode_device"] == "spark local[*]"
    assert run.data.metrics["embedding_cache_misses"] == SLICE
    written = pd.read_parquet(cache / PARQUET_NAME)
    assert sorted(written["position"]) == list(range(SLICE))

    local = load_engine(f"models:/{built_model.name}/{built_model.version}")
    spark = load_engine(f"models:/spark-built/{version.version}")
    np.testing.assert_array_equal(spark.films.ids, local.films.ids)
    assert np.abs(spark.films.vectors - local.films.vectors).max() <= 1e-5
    queries = [Query(title=title, top_n=10) for title in TITLES] + list(LIVE)
    for query, ours, theirs in zip(queries, spark.recommend(queries), local.recommend(queries), strict=True):
        assert ours["status"] == theirs["status"] == "ok", query
        assert _without_scores(ours) == _without_scores(theirs), query
        scores = [film["score"] for film in ours["recommendations"]]
        assert scores == pytest.approx([film["score"] for film in theirs["recommendations"]], abs=1e-4)


def _without_scores(answer: dict) -> list[dict]:
    """The recommendations with everything but their scores (rounded to 4 decimals: a last digit may differ)."""
    return [{key: value for key, value in film.items() if key != "score"} for film in answer["recommendations"]]
