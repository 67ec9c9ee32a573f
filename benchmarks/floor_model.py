"""A do-nothing pyfunc for benchmarks/floors.py: what `mlflow models serve` costs per request with no model work.

Same input contract as the recommender (a type-hinted list of query rows, params `mode` and `format`); answers
one tiny record per row, as JSON text, the way the gateway asks the recommender for its records.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

RECORD = '{"status": "ok", "reason": null, "recommendations": []}'


class DoNothing(PythonModel):
    def predict(self, model_input: list[dict[str, Any]], params: dict[str, Any] | None = None) -> list[str]:
        return [RECORD for _ in model_input]


mlflow.models.set_model(DoNothing())
