"""B5: build time of the default catalog: full (cold caches), rebuild unchanged, rebuild with 1% of films changed
or added.

    python -m benchmarks.build [--device cpu|cuda]

Each build is `python -m pipelines.build` in a fresh process against a throwaway sqlite tracking store and cache
folder (the registry `make up` uses is not touched). Wall time of the whole process, and the build's own step
timings (its `seconds_*` metrics). The 1% catalog: 87 films with one more genre, plus 88 new films (copies of
existing ones under new ids and titles), written as Parquet. `seconds_outside_timer`: wall time the build's own
timer does not see, the process's start-up (interpreter, imports) and its exit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np

from benchmarks.common import last_build, write_result
from model.catalog import load_catalog


def one_percent_changed(path: Path) -> int:
    """Write the default catalog with 1% of films changed (one more genre) or added (new films with their own
    people, as real additions have), as Parquet; returns how many."""
    import pandas as pd

    movies = load_catalog().movies
    rng = np.random.default_rng(0)
    changed = rng.choice(len(movies), len(movies) // 200, replace=False)
    movies.loc[changed, "genres"] = movies.loc[changed, "genres"].map(
        lambda g: [*g, "Drama" if "Drama" not in g else "History"]
    )
    added = movies.iloc[rng.choice(len(movies), len(movies) // 100 - len(changed), replace=False)].copy()
    added["id"] = np.arange(len(added)) + int(movies["id"].max()) + 1
    added["title"] = [f"New Film {i}" for i in range(len(added))]
    added["cast"] = [[f"New Actor {i}-{j}" for j in range(6)] for i in range(len(added))]
    added["directors"] = [[f"New Director {i}"] for i in range(len(added))]
    pd.concat([movies, added], ignore_index=True).to_parquet(path, index=False)
    return len(changed) + len(added)


def build(store: str, experiment: str, cache: Path, catalog: str, device: str) -> dict[str, float]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        "MLFLOW_EXPERIMENT_ID": experiment,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    command = [sys.executable, "-m", "pipelines.build", "--catalog", catalog, "--cache-dir", str(cache)]
    if device:
        command += ["--device", device]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    run, steps = last_build(store, experiment)
    hits = run.get("metrics.embedding_cache_hits")
    return {
        "wall_seconds": round(wall, 2),
        **steps,
        # the process's start-up (interpreter, imports) and exit, outside the build's own `seconds_total`
        "seconds_outside_timer": round(wall - steps.get("seconds_total", 0.0), 2),
        "embedding_cache_hits": hits,
        "neighbours_cached": run.get("metrics.neighbours_cached"),
        "dense_pools_carried_over": run.get("metrics.dense_pools_carried_over"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="", help="cpu or cuda; empty: CUDA when present")
    parser.add_argument("--warm-cache", default="", help="start from a copy of this cache (skips the full build)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as folder:
        root = Path(folder)
        store, cache = f"sqlite:///{root / 'mlflow.db'}", root / "cache"
        # The builds' artifacts (130 MB each) go in the throwaway folder too, not in ./mlruns.
        mlflow.set_tracking_uri(store)
        experiment = mlflow.create_experiment("b5-build", artifact_location=(root / "artifacts").as_uri())
        figures = {}
        if args.warm_cache:
            shutil.copytree(args.warm_cache, cache)
        else:
            figures["full"] = build(store, experiment, cache, "default", args.device)
        figures["unchanged"] = build(store, experiment, cache, "default", args.device)
        changed_catalog = root / "one_percent.parquet"
        figures["films_changed_or_added"] = one_percent_changed(changed_catalog)
        figures["one_percent_changed"] = build(store, experiment, cache, str(changed_catalog), args.device)
    figures["targets"] = {"unchanged_wall_seconds": 15, "one_percent_changed_wall_seconds": 20}
    write_result("b5_build", figures)


if __name__ == "__main__":
    main()
