"""MLproject entry point `tune`: sweep the ranking weights of a built model on the quality benchmark.

    mlflow run . -e tune --env-manager local -P model_uri=models:/movie-recommender@challenger \
        -P prior_weight=0.02,0.04,0.06 -P era_weight=0.03,0.05

The weights (`model.ranking.Ranking`) act at query time, so one build serves the whole grid: nothing is
re-encoded. Every figure comes from the validation half of the MovieLens users (pipelines/movielens.py): the test
half, which `evaluate` reports and the promotion gate reads, is never seen here. Each combination is a nested MLflow
run with its weights as params and the model's metrics, to compare in the UI; the parent run records the baselines
and the best combination (the highest P1 HR@10 among those that beat both baselines on P1, P2 and P3). Feed the
winner back as build parameters (`-P prior_weight=...`). Text-level choices (cast per film, writers) change the
vectors and need a build each.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from dataclasses import replace

import mlflow

from model.engine import Engine
from model.ranking import Ranking
from pipelines import quality
from pipelines.engines import load_engine
from pipelines.evaluate import PRIMARY, Evaluation, model_ranker, run_evaluation
from pipelines.movielens import VALIDATION, load_behaviour
from pipelines.registry import CHALLENGER, MODEL_NAME

logger = logging.getLogger(__name__)

SWEPT = ("dense_weight", "prior_weight", "era_weight", "recency", "engagement_weight", "engagement_shrink")


def tune(model_uri: str, grid: dict[str, list[float]]) -> dict[str, float]:
    """Evaluate every combination of `grid` (weights missing from it keep the model's values); returns the best."""
    with mlflow.start_run(run_name="tune"):
        base = load_engine(model_uri)
        behaviour = load_behaviour(base.films.movies).half(VALIDATION)
        tasks = quality.build_tasks(behaviour.likes, behaviour.candidates)
        reference = run_evaluation(base, behaviour)  # baselines, and the model as built
        mlflow.log_params(
            {
                "model_uri": model_uri,
                "users": VALIDATION,
                **{f"grid_{k}": ",".join(map(str, v)) for k, v in grid.items()},
            }
        )
        best: tuple[float, dict[str, float]] | None = None
        for values in itertools.product(*grid.values()):
            ranking = replace(base.ranking, **dict(zip(grid, values, strict=True)))
            metrics = score_weights(base, ranking, tasks, behaviour.candidates)
            judged = reference.headline  # a model that learned from likes is not judged on P2 (pipelines/evaluate.py)
            wins = all(metrics[m] > reference.results[b][m].mean for m in judged for b in ("popularity", "tfidf"))
            with mlflow.start_run(run_name=_name(ranking), nested=True):
                mlflow.log_params(ranking.as_dict())
                mlflow.log_metrics({**metrics, "beats_baselines": float(wins)})
            logger.info("%s: %s%s", _name(ranking), {k: round(v, 4) for k, v in metrics.items()}, " *" * wins)
            if wins and (best is None or metrics[PRIMARY] > best[0]):
                best = (metrics[PRIMARY], ranking.as_dict())
        _log_reference(reference)
        if best is None:
            logger.warning("no combination beats both baselines on %s", ", ".join(reference.headline))
            return {}
        mlflow.log_params({f"best_{key}": value for key, value in best[1].items()})
        mlflow.log_metric(f"best_{PRIMARY}", best[0])
        return best[1]


def score_weights(base: Engine, ranking: Ranking, tasks: list[quality.Task], candidates: list[int]) -> dict[str, float]:
    """The model's mean metrics on `tasks` when it ranks with `ranking` instead of its own weights."""
    variant = base.with_ranking(ranking)
    estimates = quality.evaluate_ranker(tasks, model_ranker(variant, candidates))
    return {name: estimate.mean for name, estimate in estimates.items()}


def _log_reference(reference: Evaluation) -> None:
    for name, results in reference.results.items():
        if name != "random":
            mlflow.log_metrics({f"{name.replace('-', '_')}_{m}": e.mean for m, e in results.items()})


def _name(ranking: Ranking) -> str:
    return " ".join(f"{''.join(word[:3] for word in key.split('_'))}={getattr(ranking, key)}" for key in SWEPT)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m pipelines.tune", description=__doc__.split("\n")[0])
    parser.add_argument("--model-uri", default=f"models:/{MODEL_NAME}@{CHALLENGER}")
    for name in SWEPT:
        parser.add_argument(f"--{name.replace('_', '-')}", default="", help="comma-separated values to try")
    args = parser.parse_args(argv)
    grid = {name: [float(v) for v in getattr(args, name).split(",") if v.strip()] for name in SWEPT}
    best = tune(args.model_uri, {name: values for name, values in grid.items() if values})
    print(f"best: {best}" if best else "no combination beats both baselines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
