"""B1: the model's `predict` in process, for one known title (top 10), free text, and five liked films.

    python -m benchmarks.inprocess [--model-uri models:/movie-recommender@champion] [--n 2000]

Measures the served model's own code (loaded from the registry, before anything imports this checkout's `model`).
Two figures per query kind: `Engine.recommend` (the model's work on a typed query) and `PyFuncModel.predict` (from
plain dicts, with the type-hint conversion MLflow wraps around `predict`, as the scoring server calls it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import mlflow
import numpy as np

from benchmarks.common import summary, write_result

TEXTS = [
    "heist film with a twist ending", "space opera with a rebel princess", "a detective hunts a serial killer",
    "animated toys come to life", "romantic comedy in new york", "war film about soldiers on a beach",
    "a shark terrorises a beach town", "time travel adventure with a car", "a boxer fights for the title",
    "haunted house horror film",
]  # fmt: skip


def timed(call: Callable[[Any], object], inputs: list[Any]) -> list[float]:
    """Milliseconds of `call` on each input, one after the other."""
    latencies = []
    for item in inputs:
        started = time.perf_counter()
        call(item)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-uri", default="models:/movie-recommender@champion")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    pyfunc = mlflow.pyfunc.load_model(args.model_uri)
    engine = pyfunc.unwrap_python_model().engine
    engine.encode(["warm"])  # the warm-up thread may still be loading the encoder
    query_class = sys.modules["model.schema"].Query  # the model's own schema, from its artifacts
    movies = engine.films.movies
    rng = np.random.default_rng(0)
    titles = movies["title"].to_numpy()[rng.choice(len(movies), args.n, replace=False)].tolist()
    ids = movies["id"].to_numpy()
    kinds = {
        "title": [{"title": t, "top_n": 10} for t in titles],
        "free_text": [{"query": TEXTS[i % len(TEXTS)], "top_n": 10} for i in range(min(args.n, 300))],
        "five_liked": [
            {"liked": [{"id": int(i)} for i in rng.choice(ids, 5, replace=False)], "top_n": 10}
            for _ in range(min(args.n, 500))
        ],
    }
    figures = {}
    for kind, rows in kinds.items():
        pyfunc.predict(rows[:20])  # warm caches and code paths
        queries = [query_class.model_validate(row) for row in rows]
        figures[f"{kind}_engine"] = summary(timed(lambda query: engine.recommend([query]), queries))
        figures[f"{kind}_pyfunc_predict"] = summary(timed(lambda row: pyfunc.predict([row]), rows))
    figures["target_title_p50_ms"] = 0.1
    write_result("b1_inprocess", figures)


if __name__ == "__main__":
    main()
