"""A/B: two running gateways (say, the previous commit's stack and this one's) measured alternately in one run.

    python -m benchmarks.ab --a-port 8100 --b-port 8000 [--rounds 6] [--requests 2000] [--name ab_serving]

Each round sends the same known-title recommendation requests to A and to B, sequentially and then at concurrency
16, in the order A, B in odd rounds and B, A in even ones, so that neither side always follows the other. The
result has every round's figures and, per figure, the median over the rounds and the ratio B / A of the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from benchmarks.common import HOST, known_titles, load, post_bytes, write_result

PATH = "/movies/recommendations/"
CONCURRENCY = 16


def one_side(port: int, bodies: list[bytes]) -> dict[str, Any]:
    requests = [post_bytes(HOST, port, PATH, body) for body in bodies]
    sequential, concurrent = load(HOST, port, requests, 1), load(HOST, port, requests, CONCURRENCY)
    return {
        "sequential_p50_ms": sequential["p50_ms"],
        "sequential_p99_ms": sequential["p99_ms"],
        f"c{CONCURRENCY}_rps": concurrent["throughput_rps"],
        f"c{CONCURRENCY}_p99_ms": concurrent["p99_ms"],
        "errors": sequential["errors"] + concurrent["errors"],
        "machine_cpu": sequential["machine_cpu"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a-port", type=int, required=True)
    parser.add_argument("--b-port", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--name", default="ab_serving", help="result file name under benchmarks/results/")
    args = parser.parse_args()
    bodies = [json.dumps({"title": title, "top_n": 10}).encode() for title in known_titles(args.requests)]
    ports = {"a": args.a_port, "b": args.b_port}
    for port in ports.values():  # warm-up
        load(HOST, port, [post_bytes(HOST, port, PATH, body) for body in bodies[:200]], 1)
    rounds: list[dict[str, dict[str, Any]]] = []
    for number in range(args.rounds):
        order = ("a", "b") if number % 2 == 0 else ("b", "a")
        rounds.append({side: one_side(ports[side], bodies) for side in order})
        print(json.dumps({"round": number + 1, **rounds[-1]}))
    figures: dict[str, Any] = {"a_port": args.a_port, "b_port": args.b_port, "rounds": rounds}
    for key in ("sequential_p50_ms", "sequential_p99_ms", f"c{CONCURRENCY}_rps", f"c{CONCURRENCY}_p99_ms"):
        a, b = (statistics.median(r[side][key] for r in rounds) for side in ("a", "b"))
        figures[key] = {"a_median": a, "b_median": b, "b_over_a": round(b / a, 3)}
    figures["errors"] = sum(r[side]["errors"] for r in rounds for side in ("a", "b"))
    write_result(args.name, figures)


if __name__ == "__main__":
    main()
