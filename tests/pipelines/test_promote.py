"""The promotion gate against a real registry: a truly worse build, a better one, an unevaluated one, force."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipelines.evaluate import evaluate
from pipelines.promote import PromotionError, promote
from tests.conftest import BuiltModel, mlflow_run

pytestmark = pytest.mark.slow
NAME = "gate-scratch"


@pytest.fixture(scope="module")
def versions(built_model: BuiltModel, slice_file: Path) -> dict[str, str]:
    """good: the session model (evaluated, champion); bad: a build that prefers obscure films from other decades
    (evaluated, challenger); fresh: a copy of good that nobody evaluated."""
    client = MlflowClient(built_model.tracking_uri)
    source = client.get_model_version(built_model.name, built_model.version).source
    good = mlflow.register_model(source, NAME).version
    client.set_registered_model_alias(NAME, "champion", good)
    result = mlflow_run(
        built_model.tracking_uri,
        "build",
        catalog=slice_file,
        model_name=NAME,
        prior_weight=-0.5,
        era_weight=-0.5,
        cache_dir=slice_file.parent / "build-cache",  # the session's: not the checkout's .cache/build
    )
    assert result.returncode == 0, result.stderr[-3000:]
    bad = client.get_model_version_by_alias(NAME, "challenger").version
    for version in (good, bad):
        evaluate(f"models:/{NAME}/{version}")
    fresh = mlflow.register_model(source, NAME).version
    return {"good": good, "bad": bad, "fresh": fresh}


def aliases(built_model: BuiltModel) -> dict[str, str]:
    return MlflowClient(built_model.tracking_uri).get_registered_model(NAME).aliases


def test_the_bad_build_really_is_worse(built_model: BuiltModel, versions: dict[str, str]) -> None:
    client = MlflowClient(built_model.tracking_uri)
    good, bad = (client.get_model_version(NAME, versions[k]).tags for k in ("good", "bad"))
    assert float(bad["quality.p1_hr10"]) < float(good["quality.p1_hr10_ci_low"])


def test_gate_refuses_a_worse_version(built_model: BuiltModel, versions: dict[str, str]) -> None:
    with pytest.raises(PromotionError, match="below champion version"):
        promote(NAME)  # the challenger is the bad build
    assert aliases(built_model)["champion"] == versions["good"]


def test_gate_refuses_an_unevaluated_version(built_model: BuiltModel, versions: dict[str, str]) -> None:
    with pytest.raises(PromotionError, match="has not been evaluated"):
        promote(NAME, versions["fresh"])
    result = mlflow_run(built_model.tracking_uri, "promote", version=versions["fresh"], model_name=NAME)
    assert result.returncode != 0 and "has not been evaluated" in result.stderr
    assert aliases(built_model)["champion"] == versions["good"]


def test_force_overrides_and_records_why_then_a_better_version_is_accepted(
    built_model: BuiltModel, versions: dict[str, str]
) -> None:
    result = mlflow_run(built_model.tracking_uri, "promote", version=versions["bad"], model_name=NAME, force="true")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(built_model.tracking_uri)
    assert aliases(built_model)["champion"] == versions["bad"]
    tags = client.get_model_version(NAME, versions["bad"]).tags
    assert "below champion version" in tags["promotion_forced"]
    assert tags["previous_champion"] == versions["good"]
    # rolling back: the good version passes the gate against the bad champion
    assert promote(NAME, versions["good"]) == versions["good"]
    assert aliases(built_model)["champion"] == versions["good"]
    assert "promotion_forced" not in client.get_model_version(NAME, versions["good"]).tags


def test_unknown_version_is_refused(built_model: BuiltModel, versions: dict[str, str]) -> None:
    with pytest.raises(PromotionError, match="no version 999"):
        promote(NAME, "999")
