"""B1: the model's `predict` in process, for one known title (top 10), free text, five liked films, and the worst case.

    python -m benchmarks.inprocess [--model-uri models:/movie-recommender@champion] [--n 2000]

Measures the served model's own code (loaded from the registry, before anything imports this checkout's `model`).
Two figures per query kind: `Engine.recommend` (the model's work on a typed query) and `PyFuncModel.predict` (from
plain dicts, with the type-hint conversion MLflow wraps around `predict`, as the scoring server calls it).

`worst_case`: the valid request that costs title resolution the most (see `worst_request`), timed three ways: the
engine's title resolution alone (`Engine._resolve`), `Engine.recommend`, and `PyFuncModel.predict`;
`target_worst_resolution_ms` is the bound its resolution must stay within.
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


def worst_request(best_known: str, read_chars: int, contract: Any) -> dict[str, Any]:
    """The valid request that costs title resolution the most: every film list at its limit, every entry a distinct
    title that names no film. Those matched fuzzily (the first `MAX_FUZZY_TITLES`, the title included) are as long as
    a typed title is read (`read_chars`), in English words; the others just as long, in one-letter Cyrillic words (the
    most words to split, and every character decomposed and checked for accents, being outside ASCII). The title is
    `best_known` with two letters swapped, so that the answer still ranks."""
    films, fuzzy = contract.MAX_FILMS, contract.MAX_FUZZY_TITLES - 1

    def unknown(i: int) -> dict[str, str]:
        words = "the man who knew too much " if i < fuzzy else " ".join("абвгдежзиклмнопрстуфхцчшщэюя") + " "
        return {"title": (f"{i} {words}" * read_chars)[:read_chars]}

    entries = [unknown(i) for i in range(2 * films + contract.MAX_EXCLUDE)]
    misspelled = best_known[0] + best_known[2] + best_known[1] + best_known[3:]
    lists = {"liked": entries[:films], "disliked": entries[films : 2 * films], "exclude": entries[2 * films :]}
    return {"title": misspelled, **lists}


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
    best_known = str(movies.sort_values("reviews")["title"].iloc[-1])
    worst = worst_request(best_known, engine.films.resolver.max_chars, sys.modules["model.contract"])
    pyfunc.predict([worst])
    queries = [query_class.model_validate(worst)] * min(args.n, 200)
    figures["worst_case"] = {
        "resolution": summary(timed(engine._resolve, queries)),
        "engine": summary(timed(lambda query: engine.recommend([query]), queries)),
        "pyfunc_predict": summary(timed(lambda row: pyfunc.predict([row]), [worst] * len(queries))),
    }
    figures["target_worst_resolution_ms"] = 50
    write_result("b1_inprocess", figures)


if __name__ == "__main__":
    main()
