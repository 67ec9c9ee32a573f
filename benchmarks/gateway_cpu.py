"""The gateway's own CPU per recommendation, in process, with the scoring server's answers replayed.

    python -m benchmarks.gateway_cpu [--gateway-port 8000] [--titles 300] [--rounds 7]      (after `make up`)

On this 2-core VM a sequential request's latency moves with the host's load by more than a change to the gateway
saves; the CPU the gateway's own process spends per request does not wait on wake-ups. So: the gateway app
(`create_app`, request log off) is called as an ASGI app, in this process, for N known titles (B3's titles). The
first pass goes to the running scoring server and records each answer; the measured rounds replay those bytes
from memory, so what is timed is the gateway's Python work (validation, the scoring request, parsing, the
response) and none of the scoring server's. Figures: process CPU microseconds per request, median over rounds,
configurations alternating within each round:
- `gateway_open`: as `make up` runs it (no GATEWAY_API_KEY);
- `gateway_api_key`: GATEWAY_API_KEY set, the right X-API-Key sent;
- `do_nothing_fastapi`: the floor app of benchmarks/floors.py (reads the body, answers a constant).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from typing import Any

import uvloop
from fastapi import FastAPI

from benchmarks.common import scoring_port, write_result
from benchmarks.floors import app as do_nothing_fastapi
from benchmarks.serving import bodies, titles
from gateway.app import create_app
from gateway.settings import Settings
from gateway.upstream import UpstreamPool

HOST = "127.0.0.1"
PATH = "/movies/recommendations/"
API_KEY = "benchmark-key"


class Replay:
    """Stands in for the gateway's `UpstreamPool`: forwards to the real one and records each answer by request
    body while `recording`, then answers from the recording."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.url = pool.url
        self.in_flight = 0
        self.recording = True
        self.answers: dict[bytes, tuple[int, bytes]] = {}

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.recording:
            self.answers[body] = await self.pool.post(path, body)
        return self.answers[body]

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self.pool.get(path)

    async def close(self) -> None:
        await self.pool.close()


async def call(app: FastAPI, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """One POST through the ASGI app, as uvicorn would hand it over."""
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"gateway"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *headers],
        "client": (HOST, 50000), "server": (HOST, 8000), "state": {},
    }  # fmt: skip
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the request runs
        raise AssertionError("unreachable")

    status = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise RuntimeError(f"{PATH} answered {status} for {body!r}")


async def measure(gateway_port: int, n_titles: int, rounds: int) -> dict[str, Any]:
    scoring = f"http://{HOST}:{scoring_port(gateway_port)}"
    payloads = bodies(titles(n_titles), scoring=False)
    configurations: dict[str, tuple[FastAPI, list[tuple[bytes, bytes]]]] = {
        "gateway_open": (create_app(Settings(scoring_url=scoring, request_log=False)), []),
        "gateway_api_key": (
            create_app(Settings(scoring_url=scoring, request_log=False, api_key=API_KEY)),
            [(b"x-api-key", API_KEY.encode())],
        ),
        "do_nothing_fastapi": (do_nothing_fastapi, []),
    }
    cpu_us: dict[str, list[float]] = {name: [] for name in configurations}
    gateways = [app for app, _ in configurations.values() if app is not do_nothing_fastapi]
    async with contextlib.AsyncExitStack() as running:
        replays = []
        for app in gateways:
            await running.enter_async_context(app.router.lifespan_context(app))
            backend = app.state.scoring.backend
            backend.upstream = Replay(backend.upstream)
            replays.append(backend.upstream)
        for app, headers in configurations.values():  # record the answers; warm every code path
            for body in payloads:
                await call(app, body, headers)
        for replay in replays:
            replay.recording = False
        for _ in range(rounds):
            for name, (app, headers) in configurations.items():
                started = time.process_time()
                for body in payloads:
                    await call(app, body, headers)
                cpu_us[name].append((time.process_time() - started) / len(payloads) * 1e6)
    figures: dict[str, Any] = {
        f"{name}_cpu_us_per_request": round(statistics.median(values), 1) for name, values in cpu_us.items()
    }
    figures["rounds_cpu_us_per_request"] = {name: [round(v, 1) for v in values] for name, values in cpu_us.items()}
    floor = figures["do_nothing_fastapi_cpu_us_per_request"]
    figures["gateway_open_over_do_nothing"] = round(figures["gateway_open_cpu_us_per_request"] / floor, 2)
    figures["requests_per_round"] = len(payloads)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument("--titles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    write_result("gateway_cpu", uvloop.run(measure(args.gateway_port, args.titles, args.rounds)))


if __name__ == "__main__":
    main()
