"""MLproject entry point `build`: catalog → movie text → vectors → FAISS index → one registered pyfunc model.

    mlflow run . -e build --env-manager local [-P catalog=films.csv] [-P limit=500] [-P model_name=movie-recommender]
        [-P index=auto|exact|hnsw|ivfpq] [-P exact_max=20000] [-P events=sqlite:///.run/events.db|FILE.parquet|none]

The run logs its parameters, catalog statistics (including rows skipped for an empty title), encoding figures, what
it learned co-engagement from (pipelines/engagement.py: source, events, users, time range; none: content only) and
a table of sample recommendations. The model version gets alias `challenger`; the first version also `champion`.
A bad catalog fails the run before anything is registered.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import faiss
import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

import model
from model.artifacts import code_digest, save_artifacts
from model.catalog import CatalogError, limit_catalog, load_catalog
from model.encoder import (
    ENCODER_NAME,
    MAX_TOKENS,
    default_encoder_path,
    encode,
    load_encoder,
    pick_device,
    token_counts,
)
from model.engagement import Engagement
from model.engine import Engine
from model.films import Films
from model.index import AUTO, EXACT_MAX, KINDS, build_index, choose_kind, index_params
from model.neighbours import DEFAULT_K as NEIGHBOURS_K
from model.neighbours import Neighbours, dense_pools, precompute_neighbours
from model.people import people_matrix
from model.prior import notability_prior
from model.ranking import Ranking
from model.schema import EXAMPLE_PARAMS, INPUT_EXAMPLE, Query
from model.text import TextConfig, movie_texts, rank_cast
from pipelines.cache import DEFAULT_FOLDER as DEFAULT_CACHE
from pipelines.cache import EmbeddingCache, digest, load_pools, save_pools
from pipelines.cache import load_neighbours as load_cached_neighbours
from pipelines.cache import save_neighbours as save_cached_neighbours
from pipelines.engagement import DEFAULT_EVENTS, EngagementError, Events, learn, read_events
from pipelines.engines import no_encoder_warm_up
from pipelines.registry import CHALLENGER, CHAMPION, MODEL_NAME, alias_version

logger = logging.getLogger(__name__)

MODEL_PACKAGE = Path(model.__file__).parent
RECOMMENDER_CODE = MODEL_PACKAGE / "recommender.py"
# What the served model imports; versions are pinned to the build environment's so serving matches it.
SERVING_PACKAGES = (
    "mlflow",
    "torch",
    "sentence-transformers",
    "transformers",
    "tokenizers",
    "safetensors",
    "faiss-cpu",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "pydantic",
    "rapidfuzz",
    "orjson",
)
SAMPLE_TITLES = ("The Matrix", "Toy Story", "The Godfather", "Heat", "Amélie")
SAMPLE_TOP_N = 5
DEFAULT_CATALOG = "default"  # movies.db from bokeh-sampledata
ENGINES = ("local", "spark")  # how the vectors are computed: in this process, or by Spark's executors


class BuildFailed(Exception):
    """The build cannot go on here (Spark without Java, say); the message says why. Nothing is registered."""


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what a build produces; logged as the run's parameters."""

    catalog: str = DEFAULT_CATALOG
    limit: int = 0
    model_name: str = MODEL_NAME
    batch_size: int = 64
    device: str = ""  # empty: CUDA when present, else CPU
    cache_dir: str = str(DEFAULT_CACHE)  # empty: no cache
    engine: str = "local"  # one of ENGINES
    index: str = AUTO  # auto, or one of model.index.KINDS
    exact_max: int = EXACT_MAX  # films: `auto` makes an exact index up to this size, hnsw above
    events: str = DEFAULT_EVENTS  # where co-engagement is learned from; none: content only
    events_until: str = ""  # ISO time: learn from the events before it only (empty: all)
    text: TextConfig = field(default_factory=TextConfig)
    ranking: Ranking = field(default_factory=Ranking)


@dataclass(frozen=True)
class BuildResult:
    run_id: str
    model_uri: str
    version: str
    n_films: int


def build(config: BuildConfig) -> BuildResult:
    """Build, log and register one model version; returns where it went."""
    timer = StepTimer()
    with (
        mlflow.start_run(run_name="build") as run,
        tempfile.TemporaryDirectory(prefix="movie-recommender-") as folder,
    ):
        # `mlflow run` has already logged the entry point's parameters under their own names; add the rest.
        logged = run.data.params
        mlflow.log_params({key: value for key, value in _params(config).items() if key not in logged})
        artifacts, source, n_films, seen = _save_parts(config, timer, folder)
        # The build's own parts were released when _save_parts returned: MLflow loads the saved model (twice) to
        # log it, and a catalog that fills the machine has room for one copy only.
        with timer("log_model"), no_encoder_warm_up():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(RECOMMENDER_CODE),
                code_paths=[str(MODEL_PACKAGE)],
                artifacts=artifacts,
                input_example=(INPUT_EXAMPLE, EXAMPLE_PARAMS),
                pip_requirements=serving_requirements(),
                model_config=_model_config(config, run.info.run_id, source, n_films, seen),
                registered_model_name=config.model_name,
            )
        version = str(info.registered_model_version)
        _set_aliases(config.model_name, version, run.info.run_id, source, n_films)
        mlflow.log_metrics(timer.metrics())
        logger.info("registered %s version %s from run %s", config.model_name, version, run.info.run_id)
        return BuildResult(run.info.run_id, info.model_uri, version, n_films)


def _save_parts(
    config: BuildConfig, timer: StepTimer, folder: str
) -> tuple[dict[str, str], str, int, dict[str, str | int]]:
    """Every step before logging, into `folder`: the model's artifact paths, the catalog's source, its films, and
    what it learned engagement from."""
    with timer("catalog"):
        loaded = load_catalog(_catalog_path(config.catalog))
        # Cast ranking and the prior are computed over the whole catalog, before any limit.
        movies = loaded.movies.assign(cast=rank_cast(loaded.movies["cast"].tolist()))
        movies = movies.assign(prior=notability_prior(movies))
        movies = limit_catalog(movies, config.limit)
        texts = movie_texts(movies, config.text)
    mlflow.log_metrics({"rows_read": loaded.rows_read, "rows_skipped_empty_title": loaded.skipped_empty_title})
    mlflow.log_metrics({f"catalog_{name}": value for name, value in _finite(loaded.stats).items()})
    mlflow.log_metric("n_films", len(movies))
    mlflow.set_tags({"catalog_source": loaded.source})
    mlflow.log_text("\n".join(texts[:50]), "movie_text_sample.txt")

    cache = Path(config.cache_dir) if config.cache_dir else None
    with timer("encode"):
        vectors = _vectors(texts, config, cache)
    with timer("index"):
        kind = choose_kind(len(movies), config.index, config.exact_max)
        index = build_index(vectors, movies["id"].to_numpy(), kind)
    with timer("people"):
        people = people_matrix(movies, config.text.cast_per_film)
    with timer("films"):  # response records, title index, genre masks
        films = Films(movies, index, people, vectors)
    mlflow.log_params({f"index_{key}": value for key, value in index_params(index).items()})
    mlflow.log_metric("people_vocabulary", people.shape[1])
    with timer("engagement"):
        engagement, seen = _engagement(config, films)
    with timer("neighbours"):
        neighbours = _neighbours(films, config.ranking, cache, engagement)
    _log_samples(Engine(films, config.ranking, neighbours=neighbours, engagement=engagement))
    with timer("save"):
        artifacts = save_artifacts(
            folder, default_encoder_path(), index, movies, people, neighbours, vectors, engagement
        )
    return artifacts, loaded.source, len(movies), seen


def serving_requirements() -> list[str]:
    """pip requirements of the served model, pinned to this environment (local build tags like +cpu dropped)."""
    return [f"{name}=={installed_version(name).split('+')[0]}" for name in SERVING_PACKAGES]


class StepTimer:
    """Wall seconds per build step, logged as `seconds_<step>` metrics (and `seconds_total`)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = time.perf_counter() - begin

    def metrics(self) -> dict[str, float]:
        totals = {f"seconds_{step}": round(value, 3) for step, value in self.seconds.items()}
        return {**totals, "seconds_total": round(time.perf_counter() - self.started, 3)}


def _vectors(texts: list[str], config: BuildConfig, cache: Path | None) -> np.ndarray:
    """Embeddings of the movie texts: cached ones reused, the rest encoded (the encoder loads only if needed)."""
    encoder_dir = default_encoder_path()
    store = EmbeddingCache.of_encoder(cache, encoder_dir)
    vectors, tokens, missing = store.lookup(texts)
    device = "none (all cached)"
    if missing:
        todo = [texts[i] for i in missing]
        if config.engine == "spark":  # the whole Spark job is timed: executors loading the encoder included
            from pipelines.spark import SparkUnavailable  # pyspark only for Spark builds
            from pipelines.spark_vectors import spark_vectors

            started = time.perf_counter()
            try:
                fresh, fresh_tokens, device = spark_vectors(todo, config.batch_size, config.device, cache)
            except SparkUnavailable as error:
                raise BuildFailed(str(error)) from error
            seconds = time.perf_counter() - started
        else:
            device = config.device or pick_device()  # imports torch: only when something is encoded
            encoder = load_encoder(encoder_dir, device)
            started = time.perf_counter()
            fresh = encode(encoder, todo, batch_size=config.batch_size, progress=True)
            seconds = time.perf_counter() - started
            fresh_tokens = token_counts(encoder, todo)
        mlflow.log_metrics({"encode_seconds": round(seconds, 3), "encode_films_per_second": len(todo) / seconds})
        if not vectors.size:
            vectors = np.zeros((len(texts), fresh.shape[1]), dtype=np.float32)
        vectors[missing], tokens[missing] = fresh, fresh_tokens
        store.add(todo, fresh, fresh_tokens)
        store.save()
    mlflow.set_tag("encode_device", device)
    mlflow.log_metrics(
        {
            "embedding_cache_hits": len(texts) - len(missing),
            "embedding_cache_misses": len(missing),
            "text_tokens_max": int(tokens.max()),
            "texts_over_window": int((tokens > MAX_TOKENS).sum()),
        }
    )
    return vectors


def _engagement(config: BuildConfig, films: Films) -> tuple[Engagement | None, dict[str, str | int]]:
    """Co-engagement learned from `config.events` (None: content only), and what it was learned from, which the
    run logs and the model's config keeps (`evaluate` checks it against what it judges)."""
    until = datetime.fromisoformat(config.events_until) if config.events_until else None
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    try:
        events = read_events(config.events, until)
    except EngagementError as error:
        raise BuildFailed(str(error)) from error
    if events is None or events.frame.empty:
        mlflow.set_tag("events_source", "none (content only)")
        return None, {"events_source": "none", "events_read": 0}
    seen = events.summary()
    spark = config.engine == "spark"
    engagement = _spark_engagement(events, films) if spark else learn(events.frame, films.ids)
    seen["events_films_engaged"] = engagement.films_engaged
    mlflow.log_params({key: value for key, value in seen.items() if isinstance(value, str)})
    mlflow.log_metrics({key: float(value) for key, value in seen.items() if isinstance(value, int)})
    logger.info("co-engagement learned from %s", seen)
    return (engagement if engagement.films_engaged else None), seen


def _spark_engagement(events: Events, films: Films) -> Engagement:
    from pipelines.spark import SparkUnavailable  # pyspark only for Spark builds
    from pipelines.spark_engagement import spark_learn

    try:
        return spark_learn(events, films.ids)
    except SparkUnavailable as error:
        raise BuildFailed(str(error)) from error


def _neighbours(films: Films, ranking: Ranking, cache: Path | None, engagement: Engagement | None) -> Neighbours:
    """Each film's precomputed top recommendations, from the cache when nothing they depend on changed."""
    people = films.people
    learned = () if engagement is None else (
        engagement.similarity.data, engagement.similarity.indices, engagement.similarity.indptr, engagement.support
    )  # fmt: skip
    key = digest(
        films.vectors, people.data, people.indices, people.indptr, films.prior, films.years, films.ids,
        ranking.as_dict(), NEIGHBOURS_K, index_params(films.index), code_digest(), *learned,
    )  # fmt: skip
    cached = load_cached_neighbours(cache, key)
    mlflow.log_metric("neighbours_cached", float(cached is not None))
    if cached is not None:
        return cached
    faiss.omp_set_num_threads(max(1, os.cpu_count() or 1))  # one batched search per chunk: use every core
    pools, carried = dense_pools(films, ranking, previous=load_pools(cache))
    mlflow.log_metric("dense_pools_carried_over", carried)
    save_pools(cache, pools)
    neighbours = precompute_neighbours(films, ranking, NEIGHBOURS_K, pools, engagement=engagement)
    save_cached_neighbours(cache, key, neighbours)
    return neighbours


def _log_samples(engine: Engine) -> None:
    """Recommendations for well-known titles (or the most reviewed films), as a table on the build run."""
    present = [t for t in SAMPLE_TITLES if engine.films.resolver.lookup(t)]
    if len(present) < 3:
        top = engine.films.movies.sort_values("reviews", ascending=False)["title"].head(5 - len(present))
        present += top.tolist()
    rows = []
    results = engine.recommend([Query(title=title, top_n=SAMPLE_TOP_N) for title in present])
    for title, result in zip(present, results, strict=False):
        for rank, film in enumerate(result["recommendations"], start=1):
            rows.append(
                {"query": title, "rank": rank, "title": film["title"], "year": film["year"], "score": film["score"]}
            )
    mlflow.log_table(pd.DataFrame(rows), "sample_recommendations.json")


def _set_aliases(model_name: str, version: str, run_id: str, source: str, n_films: int) -> None:
    client = MlflowClient()
    for key, value in {"build_run_id": run_id, "catalog_source": source, "n_films": str(n_films)}.items():
        client.set_model_version_tag(model_name, version, key, value)
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    if alias_version(model_name, CHAMPION, client) is None:
        client.set_registered_model_alias(model_name, CHAMPION, version)
        logger.info("%s had no champion: version %s is champion", model_name, version)


def _model_config(
    config: BuildConfig, run_id: str, source: str, n_films: int, seen: dict[str, str | int]
) -> dict[str, Any]:
    return {
        **seen,
        **config.ranking.as_dict(),
        **{f"text_{key}": value for key, value in asdict(config.text).items()},
        "model_name": config.model_name,
        "build_run_id": run_id,
        "catalog_source": source,
        "catalog_films": n_films,
        "encoder": ENCODER_NAME,
        "code_digest": code_digest(),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _params(config: BuildConfig) -> dict[str, Any]:
    flat = {key: value for key, value in asdict(config).items() if key not in ("text", "ranking")}
    flat.update({f"text_{key}": value for key, value in asdict(config.text).items()})
    flat.update(config.ranking.as_dict())
    flat["encoder"] = ENCODER_NAME
    return flat


def _catalog_path(catalog: str) -> str | None:
    return None if catalog.strip() in ("", DEFAULT_CATALOG) else catalog


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in values.items() if value == value}  # drops NaN


def parse_args(argv: list[str] | None = None) -> BuildConfig:
    parser = argparse.ArgumentParser(prog="python -m pipelines.build", description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default=DEFAULT_CATALOG, help="CSV/Parquet/movies.db path, or 'default'")
    parser.add_argument("--limit", type=float, default=0, help="keep the N most reviewed films (0: all)")
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="", help="cpu or cuda; empty picks CUDA when present")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="embedding/neighbour cache; empty: none")
    parser.add_argument("--engine", choices=ENGINES, default="local", help="where the vectors are computed")
    parser.add_argument("--index", choices=(AUTO, *KINDS), default=AUTO, help="auto: exact up to --exact-max films")
    parser.add_argument("--exact-max", type=float, default=EXACT_MAX, help="largest catalog `auto` searches exactly")
    parser.add_argument("--cast-per-film", type=float, default=TextConfig.cast_per_film)
    parser.add_argument("--dense-weight", type=float, default=Ranking.dense_weight, help="embedding vs shared people")
    parser.add_argument("--prior-weight", type=float, default=Ranking.prior_weight, help="notability prior weight")
    parser.add_argument("--era-weight", type=float, default=Ranking.era_weight, help="penalty per decade apart")
    parser.add_argument("--recency", type=float, default=Ranking.recency, help="weight ratio of consecutive liked")
    parser.add_argument("--pool", type=float, default=Ranking.pool, help="films FAISS retrieves for re-ranking")
    parser.add_argument("--events", default=DEFAULT_EVENTS, help="event store URI, .parquet/.csv export, or none")
    parser.add_argument("--events-until", default="", help="ISO time: learn from the events before it only")
    parser.add_argument("--engagement-weight", type=float, default=Ranking.engagement_weight)
    parser.add_argument("--engagement-shrink", type=float, default=Ranking.engagement_shrink)
    args = parser.parse_args(argv)
    return BuildConfig(
        catalog=args.catalog,
        limit=int(args.limit),
        model_name=args.model_name,
        batch_size=args.batch_size,
        device=args.device,
        cache_dir=args.cache_dir,
        engine=args.engine,
        index=args.index,
        exact_max=int(args.exact_max),
        events=args.events,
        events_until=args.events_until,
        text=TextConfig(cast_per_film=int(args.cast_per_film)),
        ranking=Ranking(
            args.dense_weight,
            args.prior_weight,
            args.era_weight,
            args.recency,
            int(args.pool),
            args.engagement_weight,
            args.engagement_shrink,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = build(parse_args(argv))
    except (CatalogError, BuildFailed, ValueError) as error:
        print(f"build failed, nothing registered: {error}", file=sys.stderr)
        return 2
    print(f"model {result.model_uri} registered as version {result.version} ({result.n_films} films)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
