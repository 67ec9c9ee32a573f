"""The evaluate entry point end to end on the session's slice model, against a real tracking server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.evaluate import HEADLINE, METRICS
from pipelines.online import parse_estimate
from pipelines.registry import MODEL_DESCRIPTION
from tests.conftest import BuiltModel, mlflow_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(built_model: BuiltModel) -> str:
    """Run id of `mlflow run . -e evaluate -P model_uri=models:/movie-recommender/1`."""
    uri = f"models:/{built_model.name}/{built_model.version}"
    result = mlflow_run(built_model.tracking_uri, "evaluate", model_uri=uri)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "| scorer |" in result.stdout and "| model |" in result.stdout  # the table is printed
    client = MlflowClient(built_model.tracking_uri)
    return client.get_model_version(built_model.name, built_model.version).tags["quality.run"]


def test_run_logs_model_and_baseline_metrics_with_intervals(built_model: BuiltModel, evaluated: str) -> None:
    metrics = MlflowClient(built_model.tracking_uri).get_run(evaluated).data.metrics
    for prefix in ("", "random_", "popularity_", "tfidf_"):
        for metric in METRICS:
            value, low, high = (metrics[f"{prefix}{metric}{s}"] for s in ("", "_ci_low", "_ci_high"))
            assert 0 <= low <= value <= high <= 1
    assert metrics["join_catalog_films_matched"] > 200  # the slice's 1990s films meet MovieLens
    assert 250 < metrics["p1_queries"] < 600  # the test half of the users only
    assert MlflowClient(built_model.tracking_uri).get_run(evaluated).data.tags["users"] == "test"


def test_model_beats_random_on_the_slice(built_model: BuiltModel, evaluated: str) -> None:
    metrics = MlflowClient(built_model.tracking_uri).get_run(evaluated).data.metrics
    assert metrics["p1_hr10"] > metrics["random_p1_hr10_ci_high"]
    assert metrics["p2_overlap10"] > metrics["random_p2_overlap10_ci_high"]


def test_version_carries_a_few_headline_tags(built_model: BuiltModel, evaluated: str) -> None:
    client = MlflowClient(built_model.tracking_uri)
    tags = client.get_model_version(built_model.name, built_model.version).tags
    run = client.get_run(evaluated)
    quality = {key for key in tags if key.startswith("quality.")}
    assert quality == {f"quality.{m}" for m in HEADLINE} | {"quality.beats_baselines", "quality.run"}
    for metric in HEADLINE:  # each figure with its interval in one tag, as the run's metrics say
        estimate = parse_estimate(tags[f"quality.{metric}"])
        for value, suffix in zip(
            (estimate.mean, estimate.low, estimate.high), ("", "_ci_low", "_ci_high"), strict=True
        ):
            assert value == pytest.approx(run.data.metrics[metric + suffix], abs=5e-5)
        assert estimate.low <= estimate.mean <= estimate.high
    assert tags["quality.beats_baselines"] == run.data.tags["beats_baselines"]
    # built and evaluated by this checkout: said on the run; the version carries the tag only when they differ
    assert run.data.tags["code_matches_build"] == "True"


def test_descriptions_say_what_the_model_and_the_version_are(built_model: BuiltModel, evaluated: str) -> None:
    client = MlflowClient(built_model.tracking_uri)
    assert client.get_registered_model(built_model.name).description == MODEL_DESCRIPTION
    assert "/invocations" in MODEL_DESCRIPTION and "/movies/recommendations/" in MODEL_DESCRIPTION
    version = client.get_model_version(built_model.name, built_model.version)
    build = client.get_run(version.run_id).data
    assert f"catalog `{build.params['catalog']}`" in version.description
    assert f"{int(build.metrics['n_films']):,} films" in version.description
    assert f"index `{build.params['index_type']}`" in version.description
    assert version.tags["quality.p1_hr10"] in version.description and evaluated in version.description


def test_table_and_chart_artifacts(built_model: BuiltModel, evaluated: str, tmp_path) -> None:
    client = MlflowClient(built_model.tracking_uri)
    names = {item.path for item in client.list_artifacts(evaluated, "quality")}
    assert names == {"quality/comparison.json", "quality/comparison.md", "quality/comparison.png"}
    table = json.loads(Path(client.download_artifacts(evaluated, "quality/comparison.json", str(tmp_path))).read_text())
    assert [row[0] for row in table["data"]] == ["random", "popularity", "tfidf", "model"]
    png = Path(client.download_artifacts(evaluated, "quality/comparison.png", str(tmp_path))).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
