"""Promotion against a real registry, through the MLproject entry point and the function."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipelines.promote import PromotionError, promote
from tests.conftest import BuiltModel, mlflow_run

pytestmark = pytest.mark.slow


@pytest.fixture
def two_versions(built_model: BuiltModel) -> tuple[str, str]:
    """A second version of a scratch model (copied from the built one) so promotion has somewhere to go."""
    client = MlflowClient(built_model.tracking_uri)
    name = "promotion-scratch"
    source = client.get_model_version(built_model.name, built_model.version)
    first = mlflow.register_model(source.source, name).version
    second = mlflow.register_model(source.source, name).version
    client.set_registered_model_alias(name, "champion", first)
    client.set_registered_model_alias(name, "challenger", second)
    return first, second


def test_promote_entry_point_moves_champion_to_the_given_version(built_model: BuiltModel, two_versions) -> None:
    first, second = two_versions
    result = mlflow_run(built_model.tracking_uri, "promote", version=second, model_name="promotion-scratch")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(built_model.tracking_uri)
    assert client.get_registered_model("promotion-scratch").aliases["champion"] == second
    assert client.get_model_version("promotion-scratch", second).tags["previous_champion"] == first


def test_promote_without_version_takes_the_challenger(built_model: BuiltModel, two_versions) -> None:
    first, second = two_versions
    assert promote("promotion-scratch") == second
    # rolling back is promoting the previous version again
    assert promote("promotion-scratch", first) == first
    aliases = MlflowClient(built_model.tracking_uri).get_registered_model("promotion-scratch").aliases
    assert aliases["champion"] == first


def test_unknown_version_is_refused(built_model: BuiltModel, two_versions) -> None:
    with pytest.raises(PromotionError, match="no version 999"):
        promote("promotion-scratch", "999")
    result = mlflow_run(built_model.tracking_uri, "promote", version="999", model_name="promotion-scratch")
    assert result.returncode != 0
    assert "promotion refused" in result.stderr
