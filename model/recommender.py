"""The `movie-recommender` pyfunc, logged as models-from-code (this file is the model; nothing is pickled).

`mlflow.pyfunc.log_model(python_model="model/recommender.py", code_paths=["model"], artifacts=...)` ships this file
with the `model` package; `load_context` reads the artifacts written by `model.artifacts.save_artifacts`.

Input: a list of `model.schema.Query` (JSON `{"inputs": [{"title": "The Matrix", "top_n": 5}]}` on the scoring
server; a DataFrame with the same columns also works in Python). Output: one record per query (see
`model.engine.Recommender.recommend`). Param `mode="info"` returns one record describing the model instead.
"""

from __future__ import annotations

from typing import Any

import faiss
import mlflow
from mlflow.pyfunc import PythonModel, PythonModelContext

from model.engine import Recommender
from model.schema import STATUS_INVALID, UNKNOWN_MODE, Query


class MovieRecommender(PythonModel):
    """Movies similar to a given title, from a FAISS index over SentenceTransformer vectors of movie text."""

    def load_context(self, context: PythonModelContext) -> None:
        # One query at a time is searched: OpenMP threads only add contention (measured: several ms per search).
        faiss.omp_set_num_threads(1)
        self.recommender = Recommender.from_artifacts(context.artifacts, context.model_config)

    def predict(
        self, context: PythonModelContext, model_input: list[Query], params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        mode = (params or {}).get("mode") or "recommend"
        if mode == "info":
            return [self.describe()]
        if mode != "recommend":
            return [{"status": STATUS_INVALID, "reason": UNKNOWN_MODE} for _ in model_input]
        return self.recommender.recommend(model_input)

    def describe(self) -> dict[str, Any]:
        """What is being served: model name, build run, catalog size, encoder."""
        info = {
            key: value for key, value in self.recommender.info.items() if key not in self.recommender.ranking.as_dict()
        }
        return {
            "status": "ok",
            **info,
            "ranking": self.recommender.ranking.as_dict(),
            "n_films": len(self.recommender.movies),
        }


mlflow.models.set_model(MovieRecommender())
