"""Events on the serving path: impressions on and off, the canary at 10%, and `POST /movies/feedback`, in one run.

    python -m benchmarks.events_serving [--gateway-port 8000] [--rounds 6] [--requests 2000]     (after `make up`)

Starts three gateways of its own (`python -m gateway`, unsupervised, each on a free loopback port) in front of the
running stack's scoring server, the request log on as the stack has it (into the stack's tracking server, experiment
`benchmark-events-serving`):
- `off`: GATEWAY_EVENTS=false;
- `on`: impressions into a throwaway SQLite file;
- `canary`: as `on` (a file of its own), with GATEWAY_CANARY_PERCENT=10; its challenger is a second `mlflow models
  serve` of the version the stack serves, started here (`--challenger same`: the stack's scoring server again,
  through a pool of its own; no second process, so no extra memory and no extra scoring capacity either).
Each round measures every gateway with benchmarks/ab.py's `one_side`: the same known-title requests, each with a
`user` (1,000 of them), sequentially (p50, p99), then at concurrency 16 (requests/s). The order turns by one each
round (off, on, canary; on, canary, off; canary, off, on; ...), so that no gateway always follows the same one, and
each gateway's request log and event log write what it queued before the next is measured. Per figure: median, min
and max over the rounds. Targets, on the medians: `on` and `canary` add at most 0.2 ms to `off`'s sequential p50 and
keep at least 0.95 x its concurrency-16 throughput.

Then feedback into `on`: answers are asked for first (their request ids and films), then each round sends distinct
events at concurrency 16 as single-event POSTs and as 10-event batches (the 10 films of one answer, one event name),
in turns; events/s for each, target 2,000. The gateway's /health counts confirm that every event was accepted. How
fast the writer drains into the store is B9's (benchmarks/events.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.ab import CONCURRENCY, PATH, one_side
from benchmarks.common import (
    HOST,
    answers,
    detached,
    known_titles,
    load,
    post_bytes,
    scoring_port,
    wait_for,
    write_result,
)
from events.records import EVENTS
from supervisor.processes import pick_port

RESULT = "events_serving"
VARIANTS = ("off", "on", "canary")
CANARY_PERCENT = 10
USERS = 1000  # distinct `user` values the requests carry: the canary's share is drawn per user
EXPERIMENT = "benchmark-events-serving"
FEEDBACK_PATH = "/movies/feedback"
BATCH = 10  # events per batch POST: one answer's films
MEASURED = ("sequential_p50_ms", "sequential_p99_ms", f"c{CONCURRENCY}_rps", f"c{CONCURRENCY}_p99_ms")
TARGET_P50_EXTRA_MS = 0.2
TARGET_THROUGHPUT_RATIO = 0.95
TARGET_FEEDBACK_EVENTS_PER_S = 2000
START_LIMIT_S = 600  # a second scoring server downloads and loads the model first


@dataclass(frozen=True)
class Answered:
    """A recommendation answer feedback can name: its request id and its films in order."""

    request_id: str
    films: tuple[int, ...]


def health(port: int) -> dict[str, Any]:
    return httpx.get(f"http://{HOST}:{port}/health", timeout=30).json()


def submitted(port: int) -> int:
    """Every record the gateway's event log was given so far: each is in exactly one of these counts."""
    events = health(port)["events"]
    return sum(events[name] for name in ("written", "duplicates", "queued", "lost", "rejected"))


def wait_written(port: int, limit_s: float = 120) -> float:
    """Seconds until the gateway's request log and event log hold nothing queued (at most `limit_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        state = health(port)
        if state["request_log"]["queued"] == 0 and state["events"]["queued"] == 0:
            break
        time.sleep(0.2)
    return round(time.monotonic() - started, 2)


@contextmanager
def scoring_server(model_uri: str, tracking_uri: str) -> Iterator[str]:
    """A second `mlflow models serve` of `model_uri` on a free loopback port while the block runs; its URL."""
    port = pick_port(HOST, 0)
    command = [
        str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
        "--host", HOST, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    url = f"http://{HOST}:{port}"
    with detached(command, {"MLFLOW_TRACKING_URI": tracking_uri}) as server:
        wait_for(lambda: answers(f"{url}/ping"), server, START_LIMIT_S)
        yield url


@contextmanager
def gateway(variant: str, settings: dict[str, str]) -> Iterator[int]:
    """An unsupervised gateway (`python -m gateway`) with GATEWAY_* `settings` on a free loopback port while the block
    runs; its port, once it answers, its event store is migrated and (for the canary) its challenger is known."""
    port = pick_port(HOST, 0)
    env = {f"GATEWAY_{key.upper()}": value for key, value in {**settings, "host": HOST, "port": str(port)}.items()}
    with detached([sys.executable, "-m", "gateway"], env) as child:
        wait_for(lambda: answers(f"http://{HOST}:{port}/ready"), child, START_LIMIT_S)
        wait_for(lambda: _settled(variant, health(port)), child, 60)
        yield port


def _settled(variant: str, state: dict[str, Any]) -> bool:
    if variant != "off" and state["events"]["database_reachable"] is not True:
        return False
    return variant != "canary" or state["traffic"]["canary_active"]


def variant_settings(variant: str, scoring_url: str, tracking_uri: str, folder: Path, challenger_url: str) -> dict:
    """The GATEWAY_* settings of one measured gateway (lower-case names, as gateway/settings.py spells them)."""
    settings = {"scoring_url": scoring_url, "tracking_uri": tracking_uri, "experiment": EXPERIMENT}
    settings |= {"request_log": "true", "events": str(variant != "off").lower()}
    settings["events_uri"] = f"sqlite:///{folder / f'events-{variant}.db'}"
    if variant == "canary":
        settings |= {"canary_percent": str(CANARY_PERCENT), "challenger_url": challenger_url}
    return settings


def recommendation_bodies(n: int) -> list[bytes]:
    return [
        json.dumps({"title": title, "top_n": 10, "user": f"user-{i % USERS}"}).encode()
        for i, title in enumerate(known_titles(n))
    ]


def serving_rounds(ports: dict[str, int], bodies: list[bytes], rounds: int) -> list[dict[str, Any]]:
    """Every gateway measured once per round, in an order that turns by one each round."""
    measured: list[dict[str, Any]] = []
    for number in range(rounds):
        order = VARIANTS[number % len(VARIANTS) :] + VARIANTS[: number % len(VARIANTS)]
        sides: dict[str, Any] = {}
        for variant in order:
            sides[variant] = one_side(ports[variant], bodies)
            sides[variant]["settle_s"] = wait_written(ports[variant])
        measured.append({"order": list(order), **{variant: sides[variant] for variant in VARIANTS}})
        print(json.dumps({"round": number + 1, **measured[-1]}), flush=True)
    return measured


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def serving_figures(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Per gateway, each figure's median, min and max over the rounds; per events-on gateway, its cost against
    `off` (differences and ratios of the medians, and the same per round) and whether it meets the targets."""
    figures: dict[str, Any] = {v: {k: spread([r[v][k] for r in measured]) for k in MEASURED} for v in VARIANTS}
    rps, off = f"c{CONCURRENCY}_rps", figures["off"]
    for variant in ("on", "canary"):
        extra = figures[variant]["sequential_p50_ms"]["median"] - off["sequential_p50_ms"]["median"]
        ratio = figures[variant][rps]["median"] / off[rps]["median"]
        figures[f"{variant}_vs_off"] = {
            "p50_extra_ms": round(extra, 3),
            "p50_extra_ms_by_round": spread(
                [r[variant]["sequential_p50_ms"] - r["off"]["sequential_p50_ms"] for r in measured]
            ),
            f"c{CONCURRENCY}_throughput_ratio": round(ratio, 3),
            f"c{CONCURRENCY}_throughput_ratio_by_round": spread([r[variant][rps] / r["off"][rps] for r in measured]),
            "meets_p50_target": extra <= TARGET_P50_EXTRA_MS,
            "meets_throughput_target": ratio >= TARGET_THROUGHPUT_RATIO,
        }
    figures["errors"] = sum(r[v]["errors"] for r in measured for v in VARIANTS)
    return figures


def ask_answers(port: int, n: int) -> list[Answered]:
    """`n` recommendation answers from the gateway on `port` (known titles, with users), one after another."""
    found = []
    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30) as client:
        for body in recommendation_bodies(n):
            response = client.post(PATH, content=body, headers={"Content-Type": "application/json"})
            if response.status_code == 200:
                answer = response.json()
                found.append(Answered(answer["request_id"], tuple(f["id"] for f in answer["recommendations"])))
    return found


def single_events(answered: Sequence[Answered]) -> Iterator[bytes]:
    """One event per body, every (film, event) of each answer in turn."""
    for answer, event in itertools.product(answered, EVENTS):
        for film in answer.films:
            yield json.dumps({"request_id": answer.request_id, "film_id": film, "event": event}).encode()


def batched_events(answered: Sequence[Answered]) -> Iterator[tuple[bytes, int]]:
    """Batches of one answer's first BATCH films with one event name each; (body, events in it)."""
    for answer, event in itertools.product(answered, EVENTS):
        films = answer.films[:BATCH]
        batch = [{"request_id": answer.request_id, "film_id": film, "event": event} for film in films]
        yield json.dumps({"events": batch}).encode(), len(films)


def feedback_load(port: int, bodies: list[bytes], events: int) -> dict[str, Any]:
    """POST `bodies` (`events` events in all) at concurrency 16; events/s counts only what the gateway accepted,
    read from its /health counts."""
    before = submitted(port)
    result = load(HOST, port, [post_bytes(HOST, port, FEEDBACK_PATH, body) for body in bodies], CONCURRENCY)
    accepted = submitted(port) - before
    seconds = len(bodies) / result["throughput_rps"]
    return {
        "posts": len(bodies),
        "events": events,
        "accepted": accepted,
        "events_per_s": round(accepted / seconds),
        "posts_per_s": result["throughput_rps"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "statuses": result["statuses"],
        "machine_cpu": result["machine_cpu"],
        "settle_s": wait_written(port),
    }


def feedback_rounds(port: int, rounds: int, singles: int, batches: int) -> dict[str, Any]:
    """Answers first, then per round `singles` single-event POSTs and `batches` batch POSTs, in turns; every event
    distinct, so each one is accepted."""
    needed = math.ceil(rounds * singles / (BATCH * len(EVENTS))) + math.ceil(rounds * batches / len(EVENTS))
    answered = ask_answers(port, needed + 10)
    split = math.ceil(rounds * singles / (BATCH * len(EVENTS))) + 5
    single_pool, batch_pool = single_events(answered[:split]), batched_events(answered[split:])
    measured = []
    for number in range(rounds):
        one = list(itertools.islice(single_pool, singles))
        many = list(itertools.islice(batch_pool, batches))
        posts = {"single": (one, len(one)), "batch": ([body for body, _ in many], sum(n for _, n in many))}
        order = ("single", "batch") if number % 2 == 0 else ("batch", "single")
        done = {kind: feedback_load(port, *posts[kind]) for kind in order}
        measured.append({"order": list(order), **{kind: done[kind] for kind in posts}})
        print(json.dumps({"feedback_round": number + 1, **measured[-1]}), flush=True)
    figures: dict[str, Any] = {"answers_asked": len(answered), "rounds": measured}
    for kind in ("single", "batch"):
        rates = [r[kind]["events_per_s"] for r in measured]
        figures[f"{kind}_events_per_s"] = spread(rates)
        figures[f"{kind}_p99_ms"] = spread([r[kind]["p99_ms"] for r in measured])
        figures[f"{kind}_meets_target"] = statistics.median(rates) >= TARGET_FEEDBACK_EVENTS_PER_S
    figures["all_accepted"] = all(r[k]["accepted"] == r[k]["events"] for r in measured for k in ("single", "batch"))
    figures["errors"] = sum(
        n for r in measured for k in ("single", "batch") for s, n in r[k]["statuses"].items() if s != "202"
    )
    return figures


@contextmanager
def challenger(args: argparse.Namespace, scoring_url: str, stack: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The canary's challenger: a second scoring server of the stack's version, or the stack's own; (URL, words)."""
    if args.challenger == "same":
        yield scoring_url, "the stack's own scoring server (--challenger same): no second server started"
        return
    model = stack["model"]
    name = model.get("name") or args.model_name
    uri = f"models:/{name}/{model['version']}" if model.get("version") else f"models:/{name}@champion"
    with scoring_server(uri, args.tracking_uri) as url:
        yield url, f"a second `mlflow models serve` of {uri}, started here ({url})"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    stack = health(args.gateway_port)
    scoring_url = f"http://{HOST}:{scoring_port(args.gateway_port)}"
    bodies = recommendation_bodies(args.requests)
    figures: dict[str, Any] = {"stack_model": stack["model"], "scoring_url": scoring_url}
    with ExitStack() as stack_of_processes, tempfile.TemporaryDirectory() as folder:
        challenger_url, described = stack_of_processes.enter_context(challenger(args, scoring_url, stack))
        figures["challenger"] = described
        ports = {}
        for variant in VARIANTS:
            settings = variant_settings(variant, scoring_url, args.tracking_uri, Path(folder), challenger_url)
            ports[variant] = stack_of_processes.enter_context(gateway(variant, settings))
        for port in ports.values():  # warm-up, the challenger's connections too
            load(HOST, port, [post_bytes(HOST, port, PATH, body) for body in bodies[:500]], 1)
            wait_written(port)
        measured = serving_rounds(ports, bodies, args.rounds)
        figures["serving"] = {"requests": args.requests, "rounds": measured, **serving_figures(measured)}
        traffic = health(ports["canary"])["traffic"]
        answered = traffic["answered"]
        figures["canary_answered"] = answered
        figures["canary_share"] = round(answered.get("challenger", 0) / max(1, sum(answered.values())), 4)
        figures["feedback"] = feedback_rounds(ports["on"], args.rounds, args.singles, args.batches)
        figures["events_after"] = {variant: health(port)["events"] for variant, port in ports.items()}
    figures["targets"] = {
        "p50_extra_ms": f"<= {TARGET_P50_EXTRA_MS}",
        f"c{CONCURRENCY}_throughput_ratio": f">= {TARGET_THROUGHPUT_RATIO}",
        "feedback_events_per_s": f">= {TARGET_FEEDBACK_EVENTS_PER_S}",
    }
    return figures


def verdicts(figures: dict[str, Any]) -> list[str]:
    """One line per target: the median figure, the spread over rounds, met or not."""
    serving, feedback, rps = figures["serving"], figures["feedback"], f"c{CONCURRENCY}_throughput_ratio"
    lines = []
    for variant in ("on", "canary"):
        cost = serving[f"{variant}_vs_off"]
        extra, ratio = cost["p50_extra_ms_by_round"], cost[f"{rps}_by_round"]
        lines.append(
            f"{variant} vs off: p50 {cost['p50_extra_ms']:+.3f} ms (rounds {extra['min']:+.3f} to {extra['max']:+.3f}; "
            f"target <= {TARGET_P50_EXTRA_MS}: {_met(cost['meets_p50_target'])}), c{CONCURRENCY} throughput "
            f"{cost[rps]}x (rounds {ratio['min']} to {ratio['max']}; target >= {TARGET_THROUGHPUT_RATIO}: "
            f"{_met(cost['meets_throughput_target'])})"
        )
    for kind in ("single", "batch"):
        rate = feedback[f"{kind}_events_per_s"]
        lines.append(
            f"feedback, {kind} POSTs, c{CONCURRENCY}: {rate['median']:,.0f} events/s (rounds {rate['min']:,.0f} to "
            f"{rate['max']:,.0f}; target >= {TARGET_FEEDBACK_EVENTS_PER_S:,}: {_met(feedback[f'{kind}_meets_target'])})"
        )
    lines.append(f"canary: {figures['canary_share']:.1%} of answers from the challenger, {figures['challenger']}")
    lines.append(f"errors: serving {serving['errors']}, feedback {feedback['errors']}; every event accepted: "
                 f"{feedback['all_accepted']}")  # fmt: skip
    return lines


def _met(value: bool) -> str:
    return "met" if value else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway-port", type=int, default=8000, help="the running stack's gateway")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    parser.add_argument("--model-name", default="movie-recommender")
    parser.add_argument("--rounds", type=int, default=6, choices=range(1, 21), metavar="1..20")
    parser.add_argument("--requests", type=int, default=2000, choices=range(100, 20_001), metavar="100..20000")
    parser.add_argument("--singles", type=int, default=2000, help="single-event feedback POSTs per round")
    parser.add_argument("--batches", type=int, default=500, help=f"{BATCH}-event feedback POSTs per round")
    parser.add_argument("--challenger", choices=("second", "same"), default="second")
    args = parser.parse_args()
    figures = measure(args)
    write_result(RESULT, figures)
    print("\n".join(verdicts(figures)))


if __name__ == "__main__":
    main()
