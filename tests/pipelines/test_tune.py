"""The tune entry point: one nested run per weight combination, on the session's slice model."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import BuiltModel, mlflow_run

pytestmark = pytest.mark.slow


def test_each_combination_is_a_nested_run(built_model: BuiltModel) -> None:
    uri = f"models:/{built_model.name}/{built_model.version}"
    result = mlflow_run(built_model.tracking_uri, "tune", model_uri=uri, prior_weight="0,0.04", era_weight="0.05")
    assert result.returncode == 0, result.stderr[-4000:]
    client = MlflowClient(built_model.tracking_uri)
    experiment = client.get_experiment_by_name("test-builds")
    parent = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'tune'")[0]
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(run.data.params["prior_weight"] for run in children) == ["0.0", "0.04"]
    for run in children:
        assert run.data.params["era_weight"] == "0.05"
        assert {"p1_hr10", "p2_overlap10", "p3_hr10", "beats_baselines"} <= set(run.data.metrics)
    assert "popularity_p1_hr10" in parent.data.metrics
