"""MLproject entry point `evaluate`: the model's quality on MovieLens-100k behaviour, against baselines.

    mlflow run . -e evaluate --env-manager local [-P model_uri=models:/movie-recommender@challenger]

Three protocols at k = 10 (pipelines/quality.py) on the catalog films matched to MovieLens, for the model and for
three baselines on the same candidates: random, popularity (likes, each user's target left out) and TF-IDF over the
same movie text, judged by the test half of the MovieLens users (pipelines/movielens.py; `tune` sees only the
validation half). Every figure has a bootstrap 95% interval. The run logs the metrics, a comparison table and a bar
chart; the evaluated registry version gets a few headline tags, each figure with its interval in one tag
(`quality.p1_hr10` = `0.0760 [0.0610, 0.0920]`, `quality.p3_hr10`, `quality.p2_overlap10`, `quality.beats_baselines`,
`quality.run`), which `promote` reads, and a description written from them. MovieLens is only a judge here: nothing
in the model is fitted to it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from model.artifacts import code_digest
from model.contract import MAX_FILMS
from model.engine import Engine
from model.schema import FilmRef, Query
from model.text import TextConfig, movie_texts
from pipelines import quality
from pipelines.charts import interval_bars
from pipelines.engines import load_engine
from pipelines.movielens import TEST, Behaviour, load_behaviour
from pipelines.online import format_estimate
from pipelines.registry import (
    CHALLENGER,
    MODEL_NAME,
    describe_model,
    describe_version,
    registered_version,
    replace_tags,
)

logger = logging.getLogger(__name__)

PRIMARY = "p1_hr10"
METRICS = ("p1_hr10", "p1_ndcg10", "p2_overlap10", "p3_hr10", "p3_ndcg10")
HEADLINE = ("p1_hr10", "p2_overlap10", "p3_hr10")  # the model must beat every baseline on these
TARGETS = {"p1_hr10": 0.05, "p2_overlap10": 0.12}
BASELINES = ("random", "popularity", "tfidf")
TAG_PREFIX = "quality."


@dataclass(frozen=True)
class Evaluation:
    """Per scorer ("model" and the baselines), per metric: an estimate with its interval."""

    results: dict[str, dict[str, quality.Estimate]]
    behaviour_stats: dict[str, float]

    @property
    def model(self) -> dict[str, quality.Estimate]:
        return self.results["model"]

    def beats_baselines(self) -> bool:
        return all(self.model[m].mean > self.results[b][m].mean for m in HEADLINE for b in ("popularity", "tfidf"))

    def meets_targets(self) -> bool:
        return all(self.model[m].mean >= target for m, target in TARGETS.items())

    def table(self) -> pd.DataFrame:
        """One row per scorer; each metric as `mean [low, high]`."""
        rows = {
            name: {m: f"{e[m].mean:.3f} [{e[m].low:.3f}, {e[m].high:.3f}]" for m in METRICS}
            for name, e in self.results.items()
        }
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("scorer").reset_index()


def model_ranker(engine: Engine, candidates: list[int]) -> quality.Ranker:
    """The model answering real requests: the query films as `liked` (in time order), `within` the candidates."""
    position = {film: i for i, film in enumerate(candidates)}

    def rank(queries: Any, targets: Any) -> list[list[int]]:
        # A request takes at most MAX_FILMS liked films: a long history sends its latest ones as `liked` (at the
        # default recency of 0.7 older ones would weigh under 1e-7 anyway) and the rest as `exclude` (seen).
        requests = [
            Query(
                liked=[FilmRef(id=candidates[i]) for i in query[-MAX_FILMS:]],
                exclude=[FilmRef(id=candidates[i]) for i in query[:-MAX_FILMS]] or None,
                within=candidates,
                top_n=quality.K,
            )
            for query in queries
        ]
        ranked = []
        for result in engine.recommend(requests):
            if result["status"] != "ok":
                raise RuntimeError(f"the model refused an evaluation request: {result['reason']}")
            ranked.append([position[film["id"]] for film in result["recommendations"]])
        return ranked

    return rank


def run_evaluation(engine: Engine, behaviour: Behaviour | None = None) -> Evaluation:
    """Model and baselines on the three protocols, judged by `behaviour` (default: the test half's)."""
    films = engine.films
    behaviour = behaviour or load_behaviour(films.movies).half(TEST)
    candidates = behaviour.candidates
    tasks = quality.build_tasks(behaviour.likes, candidates)
    rows = films.rows_of(candidates)
    texts = movie_texts(films.movies.iloc[rows], _text_config(engine.info))
    likes = np.bincount(films.rows_of(behaviour.likes["film"]), minlength=len(films))[rows]
    scorers: dict[str, quality.Ranker] = {
        "random": quality.ranker_of(quality.random_scorer(len(candidates))),
        "popularity": quality.ranker_of(quality.popularity_scorer(likes)),
        "tfidf": quality.ranker_of(quality.vector_scorer(quality.tfidf_vectors(texts))),
        "model": model_ranker(engine, candidates),
    }
    results = {}
    for name, ranker in scorers.items():
        results[name] = quality.evaluate_ranker(tasks, ranker)
        logger.info("%s: %s", name, {m: round(e.mean, 4) for m, e in results[name].items()})
    stats = {f"join_{key}": value for key, value in behaviour.stats.items()}
    stats.update({f"{task.name}_queries": float(len(task.queries)) for task in tasks})
    return Evaluation(results, stats)


def evaluate(model_uri: str) -> Evaluation:
    """Evaluate the model at `model_uri`, log everything to the active run and tag the registry version."""
    with mlflow.start_run(run_name="evaluate") as run:
        engine = load_engine(model_uri)
        version = registered_version(model_uri)
        mlflow.set_tags(
            {"model_uri": model_uri, "model_version": version[1] if version else "unregistered", "users": TEST}
        )
        # In this process the checkout's `model` package ranks with the version's artifacts (its own code copy
        # is shadowed by the package already imported). Say so when the two differ.
        built_with = engine.info.get("code_digest")
        same_code = built_with == code_digest()
        mlflow.set_tag("code_matches_build", str(same_code))
        if not same_code:
            logger.warning("evaluating with model code %s; the version was built with %s", code_digest(), built_with)
        evaluation = run_evaluation(engine)
        _log(evaluation)
        if version:
            _tag_version(*version, evaluation, run.info.run_id, same_code)
        return evaluation


def _log(evaluation: Evaluation) -> None:
    metrics = dict(evaluation.behaviour_stats)
    for name, estimates in evaluation.results.items():
        for metric, e in estimates.items():
            prefix = "" if name == "model" else f"{name}_"
            metrics.update(
                {f"{prefix}{metric}": e.mean, f"{prefix}{metric}_ci_low": e.low, f"{prefix}{metric}_ci_high": e.high}
            )
    mlflow.log_metrics(metrics)
    mlflow.set_tags(
        {"beats_baselines": str(evaluation.beats_baselines()), "meets_targets": str(evaluation.meets_targets())}
    )
    table = evaluation.table()
    mlflow.log_table(table, "quality/comparison.json")
    mlflow.log_text(markdown(table), "quality/comparison.md")
    with tempfile.TemporaryDirectory() as folder:
        chart = Path(folder) / "comparison.png"
        _bar_chart(evaluation, chart)
        mlflow.log_artifact(str(chart), "quality")


def version_tags(evaluation: Evaluation, run_id: str, same_code: bool) -> dict[str, str]:
    """The version's headline tags (without TAG_PREFIX): the HEADLINE figures as `mean [low, high]`, whether the
    model beats the baselines, the run holding the full table; `code_matches_build` only when it does not."""
    estimates = {metric: evaluation.model[metric] for metric in HEADLINE}
    tags = {metric: format_estimate(e.mean, e.low, e.high) for metric, e in estimates.items()}
    tags.update(beats_baselines=str(evaluation.beats_baselines()), run=run_id)
    if not same_code:
        tags["code_matches_build"] = "False"
    return tags


def _tag_version(name: str, version: str, evaluation: Evaluation, run_id: str, same_code: bool) -> None:
    """Replace the version's `quality.*` tags with this evaluation's headline, and rewrite the descriptions."""
    client = MlflowClient()
    replace_tags(client, name, version, TAG_PREFIX, version_tags(evaluation, run_id, same_code))
    describe_model(client, name)
    describe_version(client, name, version)


def _bar_chart(evaluation: Evaluation, path: Path) -> None:
    series = {name: [evaluation.results[name][m] for m in METRICS] for name in evaluation.results}
    interval_bars(
        path, METRICS, series, "value at k = 10 (95% bootstrap interval)",
        "movie-recommender vs baselines on MovieLens-100k",
    )  # fmt: skip


def _text_config(info: dict[str, Any]) -> TextConfig:
    fields = TextConfig.__dataclass_fields__
    return TextConfig(
        **{key[5:]: value for key, value in info.items() if key.startswith("text_") and key[5:] in fields}
    )


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (pandas' to_markdown would need the tabulate package)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m pipelines.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model-uri", default=f"models:/{MODEL_NAME}@{CHALLENGER}")
    args = parser.parse_args(argv)
    evaluation = evaluate(args.model_uri)
    print(markdown(evaluation.table()))
    print(
        f"beats popularity and TF-IDF on P1, P2, P3: {evaluation.beats_baselines()}; "
        f"targets (P1 HR@10 >= 0.05, P2 overlap@10 >= 0.12): {evaluation.meets_targets()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
