"""Quality: the served model against the baselines on the test half of the MovieLens users, and its default
ranking weights against their neighbours on the validation half.

    python -m benchmarks.quality [--model-uri models:/movie-recommender@champion] [--result quality]

For a model built from engagement (`make learn-demo`, then `--result quality_hybrid`) the test-half table has the
hybrid beside its content part and its co-engagement alone, with issue 27's targets met or not, and the weight check
varies the engagement weight and shrinkage too.

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
from pipelines.evaluate import METRICS, TARGETS, check_unseen, run_evaluation
from pipelines.movielens import TEST, VALIDATION, Behaviour, load_behaviour
from pipelines.tune import score_weights

VARIANTS = {
    "dense_weight": (0.5, 2.0),
    "prior_weight": (0.5, 2.0),
    "era_weight": (0.5, 2.0),
}
ENGAGEMENT_VARIANTS = {"engagement_weight": (0.5, 2.0), "engagement_shrink": (0.2, 2.0)}
RECENCY = (0.5, 0.9)


def weight_check(engine: Engine, everyone: Behaviour) -> list[dict[str, object]]:
    """Validation-half metrics of the model's weights and of each one-weight variant."""
    behaviour = everyone.half(VALIDATION)
    tasks = quality.build_tasks(behaviour.likes, behaviour.candidates)
    base = engine.ranking
    variants = [("defaults", base)]
    swept = {**VARIANTS, **(ENGAGEMENT_VARIANTS if engine.engagement is not None else {})}
    for name, factors in swept.items():
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
    parser.add_argument("--result", default="quality", help="result file name (quality_hybrid for a hybrid)")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    engine = load_engine(args.model_uri)
    behaviour = load_behaviour(engine.films.movies)
    check_unseen(engine, behaviour.half(TEST))
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
        "judged_on": list(evaluation.headline),
        "validation_half_weights": weight_check(engine, behaviour),
    }
    if evaluation.learned:
        figures["hybrid_targets"] = evaluation.hybrid_targets()
        figures["events"] = {k: v for k, v in engine.info.items() if k.startswith("events_")}
    write_result(args.result, figures)


if __name__ == "__main__":
    main()
