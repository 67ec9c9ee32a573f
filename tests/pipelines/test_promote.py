"""The promotion gate against a real registry: a truly worse build, a better one, an unevaluated one, force; the
online gate on versions the real report tagged from a SQLite event store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag
from mlflow.tracking import MlflowClient

from pipelines.evaluate import evaluate
from pipelines.online import MIN_IMPRESSIONS, parse_estimate
from pipelines.promote import PromotionError, check_gate, promote
from pipelines.report import report
from tests.conftest import BuiltModel, mlflow_run
from tests.pipelines.test_report import create_store, register_versions, traffic

pytestmark = pytest.mark.slow
NAME = "gate-scratch"
ONLINE = "online-gate-scratch"


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
    assert parse_estimate(bad["quality.p1_hr10"]).mean < parse_estimate(good["quality.p1_hr10"]).low


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


def model_version(version: str, **tags: str) -> ModelVersion:
    return ModelVersion(NAME, version, 0, tags=[ModelVersionTag(k.replace("__", "."), v) for k, v in tags.items()])


def test_quality_gate_reads_the_one_tag_form_and_the_older_three_tags() -> None:
    old_champion = model_version(
        "1", quality__p1_hr10="0.080000", quality__p1_hr10_ci_low="0.070000", quality__p1_hr10_ci_high="0.090000"
    )
    worse, close = (model_version(v, quality__p1_hr10=f"{m} [0.0500, 0.0700]") for v, m in (("2", 0.06), ("3", 0.07)))
    refused = check_gate(worse, old_champion)
    assert not refused.passed and "below champion version 1's 0.0800 beyond its 95% interval [0.0700, 0.0900]" in (
        refused.reason
    )
    assert check_gate(close, old_champion).passed
    assert check_gate(old_champion, model_version("3", quality__p1_hr10="0.1000 [0.0900, 0.1100]")).passed is False


@pytest.fixture(scope="module")
def online_versions(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Four versions with the same offline figures; online (tagged by the real report): the champion's CTR; `same`,
    a challenger with the same CTR; `worse`, one whose users never click; `thin`, one with too few impressions."""
    labels = ("champion", "same", "worse", "thin")
    versions = dict(zip(labels, register_versions(tracking_uri, ONLINE, len(labels)), strict=True))
    client = MlflowClient(tracking_uri)
    client.set_registered_model_alias(ONLINE, "champion", versions["champion"])
    for version in versions.values():
        client.set_model_version_tag(ONLINE, version, "quality.p1_hr10", "0.0800 [0.0700, 0.0900]")
    uri, engine = create_store(tmp_path_factory.mktemp("online-gate") / "events.db")
    for label, users, clicks_every in (("champion", 60, 3), ("same", 60, 3), ("worse", 60, 10**6), ("thin", 10, 3)):
        alias = "champion" if label == "champion" else "challenger"
        traffic(engine, versions[label], alias, users, clicks_every, label, model_name=ONLINE)
    report(uri, model_name=ONLINE)
    return versions


@pytest.mark.integration
def test_online_gate_refuses_too_few_impressions_naming_the_version(online_versions: dict[str, str]) -> None:
    thin = online_versions["thin"]
    with pytest.raises(PromotionError, match=f"candidate version {thin} has 200 online impressions") as refused:
        promote(ONLINE, thin, online=True)
    assert f"{MIN_IMPRESSIONS:,}" in str(refused.value)
    assert MlflowClient().get_registered_model(ONLINE).aliases["champion"] == online_versions["champion"]


@pytest.mark.integration
def test_online_gate_refuses_a_ctr_wholly_below_the_champions(
    tracking_uri: str, online_versions: dict[str, str]
) -> None:
    worse = online_versions["worse"]
    with pytest.raises(PromotionError, match="lies wholly below champion version"):
        promote(ONLINE, worse, online=True)
    result = mlflow_run(tracking_uri, "promote", version=worse, model_name=ONLINE, online="true")
    assert result.returncode != 0 and "lies wholly below champion version" in result.stderr
    assert (
        promote(ONLINE, online_versions["thin"]) == online_versions["thin"]
    )  # offline only: the online gate is opt-in
    promote(ONLINE, online_versions["champion"])  # back


@pytest.mark.integration
def test_online_gate_passes_an_equal_ctr_and_force_records_why(online_versions: dict[str, str]) -> None:
    client = MlflowClient()
    same, worse = online_versions["same"], online_versions["worse"]
    assert promote(ONLINE, same, online=True) == same
    gate = client.get_model_version(ONLINE, same).tags["promotion_gate"]
    assert gate.startswith("quality: P1 HR@10") and "online: online CTR" in gate and "not wholly below" in gate
    assert promote(ONLINE, worse, force=True, online=True) == worse
    tags = client.get_model_version(ONLINE, worse).tags
    assert "lies wholly below champion version " + same in tags["promotion_forced"]
    assert tags["promotion_gate"] == tags["promotion_forced"] and tags["previous_champion"] == same
    assert "**Promoted**" in client.get_model_version(ONLINE, worse).description
