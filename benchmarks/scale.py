"""B8: how the model grows with its catalog: build time, stored bytes and serving, at 17,472, 100,000 and 1,000,000
films.

    python -m benchmarks.scale [--sizes 17472,100000,1000000] [--queries 200]

Every size is a seeded synthetic catalog (benchmarks/synthetic_catalog.py; 17,472 is the default catalog's size)
built as a user's catalog is: `python -m pipelines.build --catalog FILE` in a fresh process, against a throwaway
tracking store and build cache. The films' vectors are put in that cache first (`benchmarks.ann.synthetic`, shaped
like the encoder's): encoding a million texts on two cores would take hours and measure the encoder, whose cost per
film is B5's. For each size:
- build: wall seconds, the build's own step timings (`seconds_*` metrics: index, people matrix, films, neighbours,
  saving, logging the model) and the build process's peak resident memory;
- stored: the bytes of each artifact the model keeps per film (index, people matrix, neighbour lists, catalog);
- title index (model/resolve.py), built in this process as the model builds it when it loads: seconds and the
  memory it holds (tracemalloc);
- served: `mlflow models serve` of the built model: seconds from start until /ping answers, resident memory then,
  and p50/p99 of one-at-a-time POSTs to /invocations: recommendations for a known title, and a title search for a
  title's first word (autocomplete).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from benchmarks.ann import synthetic
from benchmarks.common import (
    HOST,
    answers,
    detached,
    last_build,
    load,
    post_bytes,
    post_json,
    rss_mb,
    wait_for,
    write_result,
)
from benchmarks.synthetic_catalog import synthetic_catalog
from model.artifacts import FILES
from model.catalog import load_catalog
from model.encoder import default_encoder_path
from model.prior import notability_prior
from model.resolve import TitleResolver
from model.text import TextConfig, movie_texts, rank_cast
from pipelines.cache import EmbeddingCache
from supervisor.processes import pick_port
from supervisor.server import MLFLOW_MODELS

SIZES = (17_472, 100_000, 1_000_000)
TOKENS = 64  # the token count put in the cache beside each synthetic vector (under the encoder's window)
MODEL_NAME = "scale"


def prepare(n: int, folder: Path) -> tuple[Path, Path]:
    """A synthetic catalog of `n` films as Parquet, and a build cache holding a vector for each of its movie texts
    (the texts the build will make of it: same loading, cast ranking and text settings)."""
    catalog, cache = folder / f"catalog-{n}.parquet", folder / "cache"
    synthetic_catalog(n).to_parquet(catalog, index=False)
    movies = load_catalog(catalog).movies
    texts = movie_texts(movies.assign(cast=rank_cast(movies["cast"].tolist())), TextConfig())
    store = EmbeddingCache.of_encoder(cache, default_encoder_path())
    store.add(texts, synthetic(n), np.full(n, TOKENS, dtype=np.int32))
    store.save()
    return catalog, cache


class PeakMemory:
    """The largest resident memory of a process tree, sampled every `every_s` while the block runs."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid, self.every_s, self.peak_mb = pid, every_s, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, rss_mb(self.pid))

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_mb


def build(n: int, catalog: Path, cache: Path, store: str, experiment: str) -> tuple[dict[str, Any], Path]:
    """Build the catalog in a fresh process; (figures, the logged model's folder)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_EXPERIMENT_ID": experiment}
    command = [sys.executable, "-m", "pipelines.build", "--catalog", str(catalog), "--cache-dir", str(cache),
               "--model-name", f"{MODEL_NAME}-{n}"]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = PeakMemory(process.pid)
    _, errors = process.communicate()
    wall, peak_mb = time.perf_counter() - started, peak.stop()
    if process.returncode:
        raise SystemExit(f"build of {n} films failed:\n{errors[-3000:]}")
    run, steps = last_build(store, experiment)
    source = MlflowClient().get_model_version_download_uri(f"{MODEL_NAME}-{n}", "1")
    folder = Path(source.removeprefix("file://"))
    index_type = run.get("params.index_type")
    return {"wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_mb), "index": index_type, **steps}, folder


def stored_bytes(model_folder: Path) -> dict[str, int]:
    """Bytes of each per-film artifact of a logged model (the encoder, the same at every size, left out)."""
    artifacts = model_folder / "artifacts"
    return {name: (artifacts / file).stat().st_size for name, file in FILES.items()
            if name != "encoder" and (artifacts / file).is_file()}  # fmt: skip


def title_index(catalog: Path) -> dict[str, float]:
    """Seconds to build the title index of the catalog, and the memory it holds."""
    movies = load_catalog(catalog).movies
    titles, years, prior = movies["title"].tolist(), movies["year"].tolist(), notability_prior(movies)
    tracemalloc.start()
    started = time.perf_counter()
    resolver = TitleResolver(titles, years, prior)
    seconds = time.perf_counter() - started
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del resolver
    return {"seconds": round(seconds, 2), "mb": round(held / 2**20, 1)}


def serve(model_folder: Path, catalog: Path, queries: int) -> dict[str, Any]:
    """Start `mlflow models serve` on the model, time its start, read its memory and query it one at a time."""
    movies = load_catalog(catalog).movies
    unique = movies[~movies["title"].str.lower().duplicated(keep=False)]["title"].tolist()
    titles = [unique[i] for i in np.random.default_rng(0).choice(len(unique), queries, replace=False)]
    port = pick_port(HOST)
    command = [*MLFLOW_MODELS, "serve", "-m", str(model_folder), "--env-manager", "local", "--host", HOST,
               "--port", str(port)]  # fmt: skip
    started = time.perf_counter()
    with detached(command) as server:
        wait_for(lambda: answers(f"http://{HOST}:{port}/ping"), server, limit_s=1800)
        load_seconds = time.perf_counter() - started
        rss = rss_mb(server.pid)

        def timed(rows: list[dict[str, Any]], mode: str) -> dict[str, float]:
            bodies = [json.dumps({"inputs": [row], "params": {"mode": mode}}).encode() for row in rows]
            [answered] = post_json(f"http://{HOST}:{port}/invocations", bodies[0])["predictions"]
            if answered["status"] != "ok":  # time the answers a user gets, not a refusal
                raise SystemExit(f"{mode} query {rows[0]} was not answered: {answered}")
            requests = [post_bytes(HOST, port, "/invocations", body) for body in bodies]
            load(HOST, port, requests[:20], 1)  # warm-up
            result = load(HOST, port, requests, 1)
            if result["errors"]:
                raise SystemExit(f"{result['errors']} {mode} queries failed: {result['statuses']}")
            return {key: result[key] for key in ("p50_ms", "p99_ms")}

        recommend = timed([{"title": title, "top_n": 10} for title in titles], "recommend")
        search = timed([{"title": title.split()[0], "top_n": 8} for title in titles], "search")
    return {"load_seconds": round(load_seconds, 1), "rss_mb": rss, "recommend_by_title": recommend,
            "title_search": search}  # fmt: skip


def measure(n: int, queries: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{n}-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        catalog, cache = prepare(n, root)
        prepared = time.perf_counter() - started
        store = f"sqlite:///{root / 'mlflow.db'}"
        mlflow.set_tracking_uri(store)
        experiment = mlflow.create_experiment(f"b8-scale-{n}", artifact_location=(root / "artifacts").as_uri())
        figures, model_folder = build(n, catalog, cache, store, experiment)
        result = {
            "films": n,
            "prepare_seconds": round(prepared, 1),
            "build": figures,
            "stored_bytes": stored_bytes(model_folder),
            "title_index": title_index(catalog),
            "served": serve(model_folder, catalog, queries),
        }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="catalog sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=200, help="queries of each kind sent to each served model")
    args = parser.parse_args()
    sizes = [int(float(size)) for size in args.sizes.split(",")]
    write_result("b8_scale", {"sizes": [measure(n, args.queries) for n in sizes]})


if __name__ == "__main__":
    main()
