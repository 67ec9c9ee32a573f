"""Soak: 20,000 requests at concurrency 32 through the running gateway, then an audit of the request log in MLflow.

    python -m benchmarks.soak [--requests 20000] [--concurrency 32]        (after `make up`; `make soak`)

Prints and writes benchmarks/results/soak.json: requests sent, answered by status (zero 5xx required), p50/p99,
throughput; resident memory of the gateway and the scoring server after the first 1,000 requests and at the end
(growth under 10% required); then, once the gateway's request log has drained, how many of the soak's requests
MLflow holds: a per-request run each, or a row of a grouped run's `requests.json` table, counted from the
tracking server itself (required: exactly the number sent). Counting assumes no other traffic during the soak.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import httpx
import pandas as pd
from mlflow.tracking import MlflowClient

from benchmarks.common import (
    HOST,
    known_titles,
    listening_pid,
    load,
    post_bytes,
    scoring_port,
    stack_memory,
    summary,
    write_result,
)
from benchmarks.serving import bodies, drain_request_log
from gateway.request_runs import GROUPED, REQUESTS_TABLE

FIRST = 1000
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per grouped run's table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument("--tracking-uri", default="http://127.0.0.1:5000")
    parser.add_argument("--experiment", default="movie-recommendations", help="the gateway's GATEWAY_EXPERIMENT")
    parser.add_argument("--drain-limit-s", type=float, default=1800)
    args = parser.parse_args()

    port = args.gateway_port
    health = httpx.get(f"http://{HOST}:{port}/health", timeout=10).json()
    gateway_pid, scoring_pid = listening_pid(port), listening_pid(scoring_port(port))
    before_log = health["request_log"]
    requests = [
        post_bytes(HOST, port, "/movies/recommendations/", body) for body in bodies(known_titles(args.requests), False)
    ]

    started_ms = int(time.time() * 1000)
    first = load(HOST, port, requests[:FIRST], args.concurrency, raw=True)
    memory_first = stack_memory(gateway_pid, scoring_pid)
    rest = load(HOST, port, requests[FIRST:], args.concurrency, raw=True)
    memory_end = stack_memory(gateway_pid, scoring_pid)
    seconds = len(requests[FIRST:]) / rest["throughput_rps"] + FIRST / first["throughput_rps"]

    statuses: dict[str, int] = {}
    for part in (first, rest):
        for status, count in part["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    drained_s = drain_request_log(port, args.drain_limit_s)
    after_log = httpx.get(f"http://{HOST}:{port}/health", timeout=10).json()["request_log"]
    logged = logged_requests(MlflowClient(args.tracking_uri), args.experiment, started_ms)
    rows = int(logged["grouped"].sum())
    runs = len(logged) - rows
    figures = {
        "requests_sent": len(requests),
        "concurrency": args.concurrency,
        "statuses": statuses,
        "failed_5xx": sum(count for status, count in statuses.items() if status.startswith("5") or status == "0"),
        "latency": summary(first["latencies_ms"] + rest["latencies_ms"]),
        "throughput_rps": round(len(requests) / seconds, 1),
        "memory_mb_after_1000": memory_first,
        "memory_mb_at_end": memory_end,
        "memory_growth_percent": {
            name: round(100 * (memory_end[name] - memory_first[name]) / memory_first[name], 1) for name in memory_end
        },
        "request_log_drain_s": drained_s,
        "request_log": {
            "mode": after_log["mode"],
            "lost_during_soak": after_log["lost"] - before_log["lost"],
            "written_during_soak": after_log["written"] - before_log["written"],
        },
        "mlflow_records": {"per_request_runs": runs, "grouped_rows": rows, "total": runs + rows},
        "model": health["model"],
    }
    figures["every_request_logged"] = figures["mlflow_records"]["total"] == len(requests)
    write_result("soak", figures)
    ok = (
        figures["failed_5xx"] == 0
        and figures["every_request_logged"]
        and bool(figures["memory_growth_percent"])  # both processes found and measured
        and all(growth < 10 for growth in figures["memory_growth_percent"].values())
    )
    print("soak:", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


def logged_requests(client: MlflowClient, experiment: str, since_ms: int = 0) -> pd.DataFrame:
    """Every request the log holds in `experiment` that started at or after `since_ms`, one row each, whether it
    has a run of its own or is a row of a grouped run's table: columns `started_ms`, `title`, `grouped`."""
    columns = ["started_ms", "title", "grouped"]
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame(columns=columns)
    own, groups, token = [], [], None
    while True:
        page = client.search_runs(
            [found.experiment_id], f"attributes.end_time >= {since_ms}", max_results=5000, page_token=token
        )
        for run in page:
            if run.data.tags.get("status") == GROUPED:
                with tempfile.TemporaryDirectory() as folder:
                    path = client.download_artifacts(run.info.run_id, REQUESTS_TABLE, folder)
                    table = pd.read_json(path, orient="split", dtype=False)[["started_ms", "title"]]
                groups.append(table.assign(grouped=True))
            else:
                own.append((run.info.start_time, run.data.params.get("title", ""), False))
        token = page.token
        if not token:
            break
    frame = pd.concat([pd.DataFrame(own, columns=columns), *groups], ignore_index=True)
    return frame[frame["started_ms"] >= since_ms].reset_index(drop=True)


if __name__ == "__main__":
    sys.exit(main())
