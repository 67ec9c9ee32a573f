"""B2-B4 and memory: the scoring server, the gateway end to end, and the original design, measured in one run.

    python -m benchmarks.serving [--requests 2000]        (after `make up`)

- Floors (benchmarks/floors.py): the same sequential requests to a do-nothing pyfunc under `mlflow models serve`
  and to a do-nothing FastAPI route: the least each hop costs on this machine. And, right before B3, a FastAPI
  route that only forwards the gateway's request to this scoring server and returns its answer unread (two hops
  and the model, none of the gateway's work): B3 minus it is what the gateway's own work costs.
- B2: sequential POSTs to the scoring server's /invocations (one known title, top 10): as a user sends them
  (records as objects) and as the gateway sends them (param format=json, records as JSON text).
- B3: the same through the gateway (request logging on): sequential, then concurrency 8 and 32. Before it, three
  more gateways (`python -m gateway`) in front of the same scoring server, sequential: one with
  GATEWAY_REQUEST_LOG=false (what the request log costs), one with GATEWAY_LOG_FLUSH_INTERVAL_S=0 (grouped runs
  written back to back, as before the interval existed: what the interval saves), one with
  GATEWAY_LOG_FLUSH_INTERVAL_S=1 (the default before it became 10 s).
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
import numpy as np

from benchmarks.common import (
    answers,
    detached,
    listening_pid,
    load,
    post_bytes,
    scoring_port,
    stack_memory,
    wait_for,
    write_result,
)
from benchmarks.floors import SCORING_PARAMS, floors, forwarding_hop
from gateway.supervisor import pick_port
from model.catalog import load_catalog

HOST = "127.0.0.1"


def titles(n: int) -> list[str]:
    """Known titles: the best-known films of the default catalog whose title is unique there."""
    movies = load_catalog().movies
    unique = movies[~movies["title"].str.lower().duplicated(keep=False)]
    chosen = unique.sort_values("reviews", ascending=False)["title"].head(1000).tolist()
    return [chosen[i % len(chosen)] for i in np.random.default_rng(0).permutation(n)]


def bodies(names: list[str], scoring: bool, params: dict[str, str] | None = None) -> list[bytes]:
    rows = [{"title": t, "top_n": 10} for t in names]
    if not scoring:
        return [json.dumps(row).encode() for row in rows]
    return [json.dumps({"inputs": [row], **({"params": params} if params else {})}).encode() for row in rows]


def measure(port: int, path: str, payloads: list[bytes], concurrencies: tuple[int, ...]) -> dict[str, dict]:
    requests = [post_bytes(HOST, port, path, body) for body in payloads]
    load(HOST, port, requests[:100], 1)  # warm-up
    return {f"c{c}": load(HOST, port, requests, c) for c in concurrencies}


def second_gateway(scoring: int, payloads: list[bytes], **settings: str) -> dict:
    """Sequential figures of a second gateway (`python -m gateway`, GATEWAY_* `settings`) in front of the same
    scoring server, logging (if at all) to the same tracking server; its request log drained before it stops."""
    port = pick_port(HOST, 0)
    env = {"GATEWAY_PORT": str(port), "GATEWAY_SCORING_URL": f"http://{HOST}:{scoring}"}
    if os.environ.get("MLFLOW_TRACKING_URI"):
        env["GATEWAY_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"]
    env.update({f"GATEWAY_{name.upper()}": value for name, value in settings.items()})
    with detached([sys.executable, "-m", "gateway"], env) as popen:
        wait_for(lambda: answers(f"http://{HOST}:{port}/ready"), popen)
        figures = measure(port, "/movies/recommendations/", payloads, (1,))["c1"]
        drain_request_log(port)
        return figures


@contextmanager
def original_design(port: int, tracking_uri: str | None = None) -> Iterator[None]:
    """B4's server (benchmarks/original_design.py) on `port` while the block runs."""
    command = [sys.executable, "-m", "benchmarks.original_design", "--port", str(port)]
    if tracking_uri:
        command += ["--request-tracking-uri", tracking_uri]
    with detached(command) as popen:  # output discarded: MLflow prints a line per run
        wait_for(lambda: answers(f"http://{HOST}:{port}/movies/recommendations/", b'{"title": "Heat"}'), popen)
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
    names = titles(args.requests)
    figures: dict = {"floors": floors(args.requests)}
    figures["b2_scoring_server"] = measure(args.scoring_port, "/invocations", bodies(names, True), (1,))["c1"]
    figures["b2_scoring_server_as_the_gateway_asks"] = measure(
        args.scoring_port, "/invocations", bodies(names, True, SCORING_PARAMS), (1,)
    )["c1"]
    gateway_bodies = bodies(names, False)
    figures["b3_gateway_request_log_off"] = second_gateway(args.scoring_port, gateway_bodies, request_log="false")
    # the request log writing a grouped run as soon as the previous one is done (GATEWAY_LOG_FLUSH_INTERVAL_S=0),
    # and at most once a second (the default before 10 s)
    figures["b3_gateway_flush_interval_0"] = second_gateway(args.scoring_port, gateway_bodies, log_flush_interval_s="0")
    figures["b3_gateway_flush_interval_1"] = second_gateway(args.scoring_port, gateway_bodies, log_flush_interval_s="1")
    figures["b3_forwarding_floor"] = forwarding_hop(args.requests, args.scoring_port, gateway_bodies)
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
    figures["ratios_over_floors"] = {
        "b2_as_the_gateway_asks_p50": ratio(
            figures["b2_scoring_server_as_the_gateway_asks"]["p50_ms"],
            figures["floors"]["scoring_hop_do_nothing_pyfunc"]["p50_ms"],
        ),
        "b3_sequential_p50": ratio(b3["c1"]["p50_ms"], figures["floors"]["two_hops_p50_ms"]),
        "b3_sequential_p50_over_forwarding": ratio(b3["c1"]["p50_ms"], figures["b3_forwarding_floor"]["p50_ms"]),
    }
    figures["gateway_own_work_sequential_p50_ms"] = round(
        b3["c1"]["p50_ms"] - figures["b3_forwarding_floor"]["p50_ms"], 3
    )
    figures["request_log_cost_sequential_p50_ms"] = round(
        b3["c1"]["p50_ms"] - figures["b3_gateway_request_log_off"]["p50_ms"], 3
    )
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
