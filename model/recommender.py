"""The `movie-recommender` pyfunc, logged as models-from-code (this file is the model; nothing is pickled).

`mlflow.pyfunc.log_model(python_model="model/recommender.py", code_paths=["model"], artifacts=...)` ships this file
with the `model` package; `load_context` reads the artifacts written by `model.artifacts.save_artifacts`.

Input: a list of `model.schema.Query` (JSON `{"inputs": [{"title": "The Matrix", "top_n": 5}]}` on the scoring
server; a DataFrame with the same columns also works in Python). Param `mode`:

| mode        | each query row                  | each output record                                               |
| ----------- | ------------------------------- | ---------------------------------------------------------------- |
| `recommend` | title / liked / query, filters  | status, query, liked, disliked, unresolved, recommendations...   |
| `search`    | `title` = search text, `top_n`  | status, results (films with match_score)                         |
| `film`      | `id`                            | status, film (full details)                                      |
| `info`      | ignored                         | one record: model name, build run, films, genres, weights, index |

Param `format`: `records` (default) answers each record as a JSON object; `json` answers each as one string, the
record's JSON text, for clients that parse it themselves (the gateway): the scoring server's own JSON encoder then
passes one string through instead of walking every field of the record.
"""

from __future__ import annotations

import gc
from typing import Any

import faiss
import mlflow
import orjson
from mlflow.pyfunc import PythonModel, PythonModelContext

from model.contract import FORMATS, STATUS_INVALID, STATUS_OK, UNKNOWN_FORMAT, UNKNOWN_MODE
from model.engine import Engine
from model.index import index_params
from model.schema import Query


class MovieRecommender(PythonModel):
    """Movies similar to given films or text, from a FAISS index over SentenceTransformer vectors of movie text."""

    def load_context(self, context: PythonModelContext) -> None:
        # One query is searched at a time: OpenMP threads would only contend with each other.
        faiss.omp_set_num_threads(1)
        self.engine = Engine.from_artifacts(context.artifacts, context.model_config)
        # The catalog, and once loaded the encoder, live as long as the process: frozen out of the garbage
        # collector's generations, they are not walked by every full collection on the request path (the scoring
        # server's throughput at concurrency 16, docs/performance.md).
        gc.freeze()
        self.engine.warm_up(then=gc.freeze)  # the encoder loads in the background; title queries need none of it

    def predict(
        self, context: PythonModelContext, model_input: list[Query], params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]] | list[str]:
        params = params or {}
        output = params.get("format") or "records"
        if output not in FORMATS:
            return [{"status": STATUS_INVALID, "reason": UNKNOWN_FORMAT} for _ in model_input]
        records = self._records(model_input, params.get("mode") or "recommend")
        if output == "json":
            # numpy scalars as numbers; a NaN would become null (valid JSON), not the standard library's `NaN`
            return [orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY).decode() for record in records]
        return records

    def _records(self, model_input: list[Query], mode: str) -> list[dict[str, Any]]:
        if mode == "recommend":
            return self.engine.recommend(model_input)
        if mode == "search":
            return self.engine.search(model_input)
        if mode == "film":
            return self.engine.details(model_input)
        if mode == "info":
            return [self.describe()]
        return [{"status": STATUS_INVALID, "reason": UNKNOWN_MODE} for _ in model_input]

    def describe(self) -> dict[str, Any]:
        """What is being served: model name, build run, catalog size, its genres (name and number of films, by
        name), encoder, ranking weights, and the index's kind and parameters as loaded."""
        weights = self.engine.ranking.as_dict()
        info = {key: value for key, value in self.engine.info.items() if key not in weights}
        genres = sorted(self.engine.films.genres.values(), key=lambda genre: genre[0].casefold())
        return {
            "status": STATUS_OK,
            **info,
            "ranking": weights,
            "index": index_params(self.engine.films.index),
            "n_films": len(self.engine.films),
            "genres": [{"name": name, "films": int(films.sum())} for name, films in genres],
        }


mlflow.models.set_model(MovieRecommender())
