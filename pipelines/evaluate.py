"""MLproject entry point `evaluate`: the model's quality on MovieLens-100k behaviour, against baselines.

    mlflow run . -e evaluate --env-manager local [-P model_uri=models:/movie-recommender@challenger]

Three protocols at k = 10 (pipelines/quality.py) on the catalog films matched to MovieLens, for the model and for
three baselines on the same candidates: random, popularity (likes, each user's target left out) and TF-IDF over the
same movie text, judged by the test half of the MovieLens users (pipelines/movielens.py; `tune` sees only the
validation half). Every figure has a bootstrap 95% interval. The run logs the metrics, a comparison table and a bar
chart; the evaluated registry version gets a few headline tags, each figure with its interval in one tag
(`quality.p1_hr10` = `0.0760 [0.0610, 0.0920]`, `quality.p3_hr10`, `quality.p2_overlap10`, `quality.beats_baselines`,
`quality.run`), which `promote` reads, and a description written from them.

A model built from engagement (pipelines/engagement.py) is judged three ways on the same tasks: the hybrid as built,
its content part alone (engagement weight 0) and its co-engagement alone. It may have learned from MovieLens likes
(`make learn-demo` imports them): evaluation refuses a version whose build read any of the test half's held-out
targets (each user's last like) from the events it logged, so a figure can never reward what the build saw. P2's
truth is made from the very likes such a model learns from: it is reported, and left out of the judgement.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from model.artifacts import code_digest
from model.contract import MAX_FILMS
from model.engine import Engine
from model.ranking import recency_weights
from model.schema import FilmRef, Query
from model.text import TextConfig, movie_texts
from pipelines import quality
from pipelines.charts import interval_bars
from pipelines.engagement import EVENT_VALUES, EngagementError, read_events
from pipelines.engines import load_engine
from pipelines.movielens import TEST, USER_KEY, Behaviour, load_behaviour
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
LEARNED_HEADLINE = ("p1_hr10", "p3_hr10")  # ... and a model that learned from likes on these (P2: see above)
TARGETS = {"p1_hr10": 0.05, "p2_overlap10": 0.12}
HYBRID_TARGETS = {"p1_hr10": 0.11, "p3_hr10": 0.17}
TAG_PREFIX = "quality."
CONTENT, CO_ENGAGEMENT = "content", "co-engagement"  # the hybrid's two parts, judged alone


class EvaluationRefused(RuntimeError):
    """The version cannot be judged honestly on the test half; the message says why."""


@dataclass(frozen=True)
class Evaluation:
    """Per scorer ("model" and the baselines), per metric: an estimate with its interval."""

    results: dict[str, dict[str, quality.Estimate]]
    behaviour_stats: dict[str, float]

    @property
    def model(self) -> dict[str, quality.Estimate]:
        return self.results["model"]

    @property
    def learned(self) -> bool:
        """Whether the model learned from engagement (then judged on LEARNED_HEADLINE, beside its two parts)."""
        return CO_ENGAGEMENT in self.results

    @property
    def headline(self) -> tuple[str, ...]:
        return LEARNED_HEADLINE if self.learned else HEADLINE

    def beats_baselines(self) -> bool:
        judged = self.headline
        return all(self.model[m].mean > self.results[b][m].mean for m in judged for b in ("popularity", "tfidf"))

    def hybrid_targets(self) -> dict[str, bool]:
        """For a model built from engagement: each of issue 27's targets on the test half, met or not."""
        model, popularity = self.model, self.results["popularity"]
        met = {f"{m} >= {target}": model[m].mean >= target for m, target in HYBRID_TARGETS.items()}
        met.update({f"{m} low > popularity high": model[m].low > popularity[m].high for m in HYBRID_TARGETS})
        for part in (CONTENT, CO_ENGAGEMENT):
            met.update({f"{m} >= {part}": model[m].mean >= self.results[part][m].mean for m in HYBRID_TARGETS})
        return met

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


def co_engagement_scorer(engine: Engine, candidates: list[int]) -> quality.Scorer:
    """The model's co-engagement alone: the query films' rows, by recency and confidence, as the blend takes it."""
    assert engine.engagement is not None
    rows = engine.films.rows_of(candidates)
    similarity = engine.engagement.similarity[rows][:, rows].tocsr()
    confidence = engine.engagement.confidence(rows, engine.ranking.engagement_shrink)

    def score(queries: Any, targets: Any) -> np.ndarray:
        scores = np.zeros((len(queries), len(rows)))
        for i, query in enumerate(queries):
            query = list(query)[-MAX_FILMS:]
            weights = recency_weights(len(query), engine.ranking.recency) * confidence[query]
            scores[i] = similarity[query].T @ weights
        return scores

    return score


def check_unseen(engine: Engine, behaviour: Behaviour) -> None:
    """Refuse (EvaluationRefused) when the version's build learned from any held-out target of `behaviour` (each
    user's last like, the target of P1 and P3), by the events source and time range its build logged."""
    info = engine.info
    source = str(info.get("events_source") or "none")
    if source == "none" or not int(info.get("events_read") or 0):
        return
    try:
        events = read_events(source)
    except (EngagementError, OSError) as error:
        raise EvaluationRefused(f"the events this version learned from ({source}) cannot be read: {error}") from error
    if events is None:
        raise EvaluationRefused(f"the events this version learned from ({source}) are gone: cannot check them")
    seen = events.frame
    seen = seen[seen["timestamp"].between(pd.Timestamp(info["events_from"]), pd.Timestamp(info["events_to"]))]
    seen = seen[seen["event"].isin([e for e, value in EVENT_VALUES.items() if value > 0])]
    ordered = behaviour.likes.sort_values(["user", "timestamp", "film"], kind="stable")
    last = ordered.groupby("user").tail(1)
    last = last[last["user"].map(ordered.groupby("user").size()) >= quality.MIN_LIKED]
    targets = pd.DataFrame({"user": [USER_KEY.format(user=u) for u in last["user"]], "film_id": last["film"]})
    leaked = targets.merge(seen[["user", "film_id"]].drop_duplicates(), on=["user", "film_id"])
    if len(leaked):
        example = leaked.iloc[0]
        raise EvaluationRefused(
            f"this version learned from {len(leaked)} of the {len(targets)} held-out targets of the {TEST} half "
            f"(e.g. {example['user']} liking film {example['film_id']}) in {source}: its figures would reward what "
            "its build saw. Build it from events that leave each user's last like out (make learn-demo does)"
        )


def run_evaluation(engine: Engine, behaviour: Behaviour | None = None) -> Evaluation:
    """Model and baselines on the three protocols, judged by `behaviour` (default: the test half's); a model
    built from engagement also as its content part alone and its co-engagement alone."""
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
    if engine.engagement is not None and engine.ranking.engagement_weight:
        content = engine.with_ranking(replace(engine.ranking, engagement_weight=0.0))
        scorers[CONTENT] = model_ranker(content, candidates)
        scorers[CO_ENGAGEMENT] = quality.ranker_of(co_engagement_scorer(engine, candidates))
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
        behaviour = load_behaviour(engine.films.movies).half(TEST)
        check_unseen(engine, behaviour)
        evaluation = run_evaluation(engine, behaviour)
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
    if evaluation.learned:
        met = evaluation.hybrid_targets()
        mlflow.set_tags({"judged_on": ", ".join(evaluation.headline), "hybrid_targets_met": str(all(met.values()))})
        mlflow.log_dict(met, "quality/hybrid_targets.json")
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
    estimates = {metric: evaluation.model[metric] for metric in HEADLINE}  # P2 too: reported, if not judged
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
    try:
        evaluation = evaluate(args.model_uri)
    except EvaluationRefused as error:
        print(f"evaluation refused: {error}", file=sys.stderr)
        return 2
    print(markdown(evaluation.table()))
    judged = ", ".join(m.split("_")[0].upper() for m in evaluation.headline)
    print(
        f"beats popularity and TF-IDF on {judged}: {evaluation.beats_baselines()}; "
        f"targets (P1 HR@10 >= 0.05, P2 overlap@10 >= 0.12): {evaluation.meets_targets()}"
    )
    if evaluation.learned:
        unmet = [name for name, met in evaluation.hybrid_targets().items() if not met]
        print(f"hybrid targets: {'all met' if not unmet else 'NOT met: ' + '; '.join(unmet)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
