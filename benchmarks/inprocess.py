"""B1: the model's `predict` in process, for one known title (top 10), free text, and five liked films.

    python -m benchmarks.inprocess [--model-uri models:/movie-recommender@champion] [--n 2000]

Measures the served model's own code (loaded from the registry, before anything imports this checkout's `model`).
Three figures per query kind: `Recommender.recommend` (the model's work on a validated query),
`python_model.predict` (plus the pydantic query and the type-hint check MLflow wraps around `predict`), and
`PyFuncModel.predict` (from plain dicts, as the scoring server calls it). Then one known-title record encoded as
the model answers param `format=json` (orjson) and as it did before (`json.dumps`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import mlflow
import numpy as np
import orjson

from benchmarks.common import summary, write_result

TEXTS = [
    "heist film with a twist ending", "space opera with a rebel princess", "a detective hunts a serial killer",
    "animated toys come to life", "romantic comedy in new york", "war film about soldiers on a beach",
    "a shark terrorises a beach town", "time travel adventure with a car", "a boxer fights for the title",
    "haunted house horror film",
]  # fmt: skip


def timed(call, inputs: list) -> list[float]:
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
    model = pyfunc.unwrap_python_model()
    model.recommender.encode(["warm"])  # the warm-up thread may still be loading the encoder
    query_class = sys.modules["model.schema"].Query  # the model's own schema, from its artifacts
    movies = model.recommender.movies
    rng = np.random.default_rng(0)
    titles = movies["title"].to_numpy()[rng.choice(len(movies), args.n, replace=False)].tolist()
    ids = movies["id"].to_numpy()

    def engine(query: object) -> None:
        model.recommender.recommend([query])

    def own(row: dict) -> None:
        model.predict(None, [query_class.model_validate(row)])

    def wrapped(row: dict) -> None:
        pyfunc.predict([row])

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
        for row in rows[:20]:  # warm caches and code paths
            own(row)
        figures[f"{kind}_recommender"] = summary(timed(engine, [query_class.model_validate(r) for r in rows]))
        figures[f"{kind}_model_predict"] = summary(timed(own, rows))
        figures[f"{kind}_pyfunc_predict"] = summary(timed(wrapped, rows))
    # What `format=json` (the gateway's request) costs the model per record: the encoder it uses, orjson, against
    # the standard library's `json.dumps` it replaced, on the known-title records above.
    records = model.recommender.recommend([query_class.model_validate(row) for row in kinds["title"]])
    figures["title_record_orjson"] = summary(
        timed(lambda record: orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY).decode(), records)
    )
    figures["title_record_json_dumps"] = summary(timed(lambda record: json.dumps(record, ensure_ascii=False), records))
    figures["target_title_p50_ms"] = 0.1
    write_result("b1_inprocess", figures)


if __name__ == "__main__":
    main()
