"""B2-B4 and memory: the scoring server, the gateway end to end, and the original design, measured in one run.

    python -m benchmarks.serving [--requests 2000]        (after `make up`)

- B2: sequential POSTs to the scoring server's /invocations (one known title, top 10), as the gateway sends them
  (param format=json: each record as its JSON text).
- B3: the same requests through the gateway (request log on): sequential, then concurrency 8 and 32.
- B4: the original design (benchmarks/original_design.py, started here on port 8100, logging to the same MLflow
  server), measured the same way right after B3; ratios B3/B4.
- Memory: resident memory of the scoring server and the gateway after 1,000 and after 10,000 gateway requests.
The load generator is benchmarks/common.py's keep-alive HTTP/1.1 client, the same for every target.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from benchmarks.common import (
    HOST,
    answers,
    detached,
    known_titles,
    listening_pid,
    load,
    post_bytes,
    scoring_port,
    stack_memory,
    wait_for,
    write_result,
)

SCORING_PARAMS = {"mode": "recommend", "format": "json"}


def bodies(names: list[str], scoring: bool) -> list[bytes]:
    rows = [{"title": t, "top_n": 10} for t in names]
    if not scoring:
        return [json.dumps(row).encode() for row in rows]
    return [json.dumps({"inputs": [row], "params": SCORING_PARAMS}).encode() for row in rows]


def measure(port: int, path: str, payloads: list[bytes], concurrencies: tuple[int, ...]) -> dict[str, dict]:
    requests = [post_bytes(HOST, port, path, body) for body in payloads]
    load(HOST, port, requests[:100], 1)  # warm-up
    return {f"c{c}": load(HOST, port, requests, c) for c in concurrencies}


@contextmanager
def original_design(port: int, tracking_uri: str | None = None) -> Iterator[None]:
    """B4's server (benchmarks/original_design.py) on `port` while the block runs."""
    command = [sys.executable, "-m", "benchmarks.original_design", "--port", str(port)]
    if tracking_uri:
        command += ["--request-tracking-uri", tracking_uri]
    with detached(command) as server:  # output discarded: MLflow prints a line per run
        wait_for(lambda: answers(f"http://{HOST}:{port}/movies/recommendations/", b'{"title": "Heat"}'), server)
        yield


def drain_request_log(port: int, limit_s: float = 600) -> float:
    """Seconds until the gateway's request log has written what B3 queued (so B4 finds MLflow idle)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if httpx.get(f"http://{HOST}:{port}/health").json()["request_log"]["queued"] == 0:
            break
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument("--scoring-port", type=int, help="default: the one the gateway's /health names")
    parser.add_argument("--original-port", type=int, default=8100)
    parser.add_argument(
        "--original-tracking-uri", help="B4's request runs go here (default: the same server as the gateway's)"
    )
    args = parser.parse_args()
    args.scoring_port = args.scoring_port or scoring_port(args.gateway_port)
    names = known_titles(args.requests)
    gateway_bodies = bodies(names, False)
    figures: dict = {}
    figures["b2_scoring_server"] = measure(args.scoring_port, "/invocations", bodies(names, True), (1,))["c1"]
    figures["b3_gateway"] = measure(args.gateway_port, "/movies/recommendations/", gateway_bodies, (1, 8, 32))
    figures["b3_request_log_drain_seconds"] = drain_request_log(args.gateway_port)  # B4 logs to the same server
    figures["b4_request_tracking_uri"] = args.original_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    with original_design(args.original_port, args.original_tracking_uri):
        figures["b4_original_design"] = measure(
            args.original_port, "/movies/recommendations/", gateway_bodies, (1, 8, 32)
        )
    b3, b4 = figures["b3_gateway"], figures["b4_original_design"]
    figures["ratios_b3_over_b4"] = {
        "sequential_p50": ratio(b3["c1"]["p50_ms"], b4["c1"]["p50_ms"]),
        "sequential_p99": ratio(b3["c1"]["p99_ms"], b4["c1"]["p99_ms"]),
        "c32_throughput": ratio(b3["c32"]["throughput_rps"], b4["c32"]["throughput_rps"]),
        "c32_p99": ratio(b3["c32"]["p99_ms"], b4["c32"]["p99_ms"]),
    }
    figures["targets"] = {
        "b3_sequential_p50_ms": 2.5,
        "b3_sequential_p99_ms": 6.0,
        "c32_throughput": ">= 5x",
        "c32_p99": "<= 0.5x",
    }
    figures["memory_mb"] = memory(args, names)
    health = httpx.get(f"http://{HOST}:{args.gateway_port}/health").json()
    figures["request_log_after"] = health["request_log"]
    write_result("b2_b3_b4_serving", figures)


def memory(args: argparse.Namespace, names: list[str]) -> dict[str, float]:
    """Resident memory of both servers after the next 1,000 and then 10,000 gateway requests (concurrency 8)."""
    gateway, scoring = listening_pid(args.gateway_port), listening_pid(args.scoring_port)
    requests = [post_bytes(HOST, args.gateway_port, "/movies/recommendations/", b) for b in bodies(names, False)]
    pool = (requests * (10_000 // len(requests) + 1))[:10_000]
    load(HOST, args.gateway_port, pool[:1000], 8)
    after_1k = stack_memory(gateway, scoring)
    load(HOST, args.gateway_port, pool[1000:], 8)
    after_10k = stack_memory(gateway, scoring)
    growth = {k: round(100 * (after_10k[k] - after_1k[k]) / after_1k[k], 1) for k in after_1k}
    return {"after_1000": after_1k, "after_10000": after_10k, "growth_percent": growth}


if __name__ == "__main__":
    main()
