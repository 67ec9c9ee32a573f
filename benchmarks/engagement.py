"""B10: learning co-engagement at build time from 10 million events over 100,000 films, locally and on Spark.

    python -m benchmarks.engagement [--events 10000000] [--films 100000] [--users 200000] [--paths local,spark]

The events are seeded and synthetic, made with numpy: films drawn by a long-tailed popularity (the film of rank r
weighs r^-0.9), users by a log-normal activity (a median user a few dozen events, the busiest thousands), each event
a like, click or dismiss (30/55/15%), so a user meets some films more than once. They are written once to Parquet;
each path then runs in a fresh process that reads them and learns the engagement part:
- local: `pipelines.engagement.learn` (implicit's item-item cosine), with its three steps timed (the user x film
  values, the cosine neighbours, the co-like counts);
- spark: `pipelines.spark_engagement.spark_learn` on local[*], which writes the events to Parquet for Spark itself.
Figures: the step's wall seconds, and peak resident memory of the whole process tree (sampled every 0.2 s, Spark's
JVM included), beside the process's own peak (getrusage) and its memory before the step (the events read).
Targets: each path within 5 minutes and 4 GiB. A path still running after --limit-s is stopped and reported
unfinished, with the time and memory it had reached.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import write_result
from benchmarks.scale import PeakMemory

TARGET_SECONDS = 300
TARGET_MIB = 4096
PATHS = ("local", "spark")
EVENT_SHARES = {"like": 0.3, "click": 0.55, "dismiss": 0.15}


def synthetic_events(events: int, films: int, users: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """(events with the columns of an export, the catalog's film ids); see the module docstring."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(np.arange(1, 20 * films), films, replace=False)).astype(np.int64)
    popularity = 1.0 / np.arange(1, films + 1) ** 0.9
    by_rank = rng.permutation(films)  # the most popular films sit anywhere in the catalog
    activity = rng.lognormal(0.0, 1.2, users)
    names = np.array([f"user-{u}" for u in range(users)], dtype=object)
    kinds = np.array(list(EVENT_SHARES), dtype=object)
    frame = pd.DataFrame(
        {
            "user": names[rng.choice(users, events, p=activity / activity.sum())],
            "film_id": ids[by_rank[rng.choice(films, events, p=popularity / popularity.sum())]],
            "event": kinds[rng.choice(len(kinds), events, p=list(EVENT_SHARES.values()))],
            "timestamp": pd.to_datetime(1.7e9 + np.sort(rng.integers(0, 365 * 86_400, events)), unit="s", utc=True),
        }
    )
    return frame, ids


def measure(path: str, folder: Path, limit_s: float) -> dict[str, Any]:
    """One path in a fresh process (its own session, stopped with everything under it after `limit_s`): its
    figures, and the peak memory of its process tree."""
    command = [sys.executable, "-m", "benchmarks.engagement", "--child", path, "--folder", str(folder)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    peak, started = PeakMemory(process.pid, every_s=0.2), time.perf_counter()
    try:
        output, errors = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        peak_mb = peak.stop()
        seconds = round(time.perf_counter() - started, 1)
        return {"finished": False, "seconds": seconds, "peak_rss_mb": round(peak_mb), "meets_target": False}
    peak_mb = peak.stop()
    if process.returncode:
        raise SystemExit(f"the {path} path failed:\n{errors[-3000:]}")
    figures = {"finished": True, **json.loads(output.strip().splitlines()[-1])}
    peak_mb = max(peak_mb, figures["process_peak_rss_mb"])  # sampling can miss a short peak of the process itself
    figures["peak_rss_mb"] = round(peak_mb)
    figures["meets_target"] = figures["seconds"] <= TARGET_SECONDS and peak_mb <= TARGET_MIB
    return figures


def child(path: str, folder: Path) -> None:
    """In the fresh process: read the events, learn, print the figures as one JSON line."""
    from pipelines import engagement
    from pipelines.engagement import Events

    frame, ids = pd.read_parquet(folder / "events.parquet"), np.load(folder / "ids.npy")
    before = _rss_mb()
    steps: dict[str, float] = {}
    started = time.perf_counter()
    if path == "local":
        for step in ("user_film_values", "cosine_neighbours", "co_counts"):
            setattr(engagement, step, _timed(getattr(engagement, step), steps, step))
        learned = engagement.learn(frame, ids)
    else:
        from pipelines.spark_engagement import spark_learn

        learned = spark_learn(Events(frame, "synthetic"), ids)
    seconds = time.perf_counter() - started
    figures = {
        "seconds": round(seconds, 1),
        **{f"seconds_{step}": value for step, value in steps.items()},
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_mb": round(before),
        "pairs_kept": int(learned.similarity.nnz),
        "films_engaged": learned.films_engaged,
    }
    print(json.dumps(figures))


def _timed(function: Any, steps: dict[str, float], name: str) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = function(*args, **kwargs)
        steps[name] = round(time.perf_counter() - started, 1)
        return result

    return timed


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--films", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--paths", default=",".join(PATHS), help="which of local,spark to run")
    parser.add_argument("--limit-s", type=float, default=900, help="stop a path that runs longer (seconds)")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder)
        return
    started = time.perf_counter()
    frame, ids = synthetic_events(args.events, args.films, args.users)
    generated = time.perf_counter() - started
    per_user = frame.groupby("user").size()
    figures: dict[str, Any] = {
        "events": len(frame),
        "films": len(ids),
        "users": int(per_user.size),
        "films_with_events": int(frame["film_id"].nunique()),
        "events_per_user_median_max": [int(per_user.median()), int(per_user.max())],
        "generate_seconds": round(generated, 1),
        "target_seconds": TARGET_SECONDS,
        "target_mib": TARGET_MIB,
    }
    with tempfile.TemporaryDirectory(prefix="b10-engagement-") as name:
        folder = Path(name)
        frame.to_parquet(folder / "events.parquet", index=False)
        np.save(folder / "ids.npy", ids)
        del frame, per_user
        for path in args.paths.split(","):
            figures[path] = measure(path, folder, args.limit_s)
    write_result("engagement", figures)


if __name__ == "__main__":
    main()
