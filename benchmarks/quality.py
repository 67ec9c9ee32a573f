"""Quality: the served model against the baselines on the test half of the MovieLens users, and its default
ranking weights against their neighbours on the validation half.

    python -m benchmarks.quality [--model-uri models:/movie-recommender@champion]

The test-half table is what `mlflow run . -e evaluate` reports and the promotion gate reads. The weight check varies
one weight at a time around the model's own (each halved and doubled, `recency` to 0.5 and 0.9) and scores each
variant as `tune` does, on the validation half only: it says whether the defaults still sit at a local best there.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from benchmarks.common import write_result
from model.engine import Engine
from pipelines import quality
from pipelines.engines import load_engine
from pipelines.evaluate import METRICS, TARGETS, run_evaluation
from pipelines.movielens import TEST, VALIDATION, Behaviour, load_behaviour
from pipelines.tune import score_weights

VARIANTS = {
    "dense_weight": (0.5, 2.0),
    "prior_weight": (0.5, 2.0),
    "era_weight": (0.5, 2.0),
}
RECENCY = (0.5, 0.9)


def weight_check(engine: Engine, everyone: Behaviour) -> list[dict[str, object]]:
    """Validation-half metrics of the model's weights and of each one-weight variant."""
    behaviour = everyone.half(VALIDATION)
    tasks = quality.build_tasks(behaviour.likes, behaviour.candidates)
    base = engine.ranking
    variants = [("defaults", base)]
    for name, factors in VARIANTS.items():
        variants += [(f"{name} x{factor}", replace(base, **{name: getattr(base, name) * factor})) for factor in factors]
    variants += [(f"recency {value}", replace(base, recency=value)) for value in RECENCY]
    rows = []
    for label, ranking in variants:
        metrics = score_weights(engine, ranking, tasks, behaviour.candidates)
        rows.append({"variant": label, **ranking.as_dict(), **{m: round(v, 4) for m, v in metrics.items()}})
        print(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-uri", default="models:/movie-recommender@champion")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    engine = load_engine(args.model_uri)
    behaviour = load_behaviour(engine.films.movies)
    evaluation = run_evaluation(engine, behaviour.half(TEST))
    test_half = {
        scorer: {metric: vars(estimate) for metric, estimate in estimates.items()}
        for scorer, estimates in evaluation.results.items()
    }
    figures = {
        "model_uri": args.model_uri,
        "n_films": len(engine.films),
        "metrics": list(METRICS),
        "targets": TARGETS,
        "test_half": test_half,
        "test_half_users": evaluation.behaviour_stats.get("join_users_with_likes"),
        "beats_baselines": evaluation.beats_baselines(),
        "meets_targets": evaluation.meets_targets(),
        "validation_half_weights": weight_check(engine, behaviour),
    }
    write_result("quality", figures)


if __name__ == "__main__":
    main()
