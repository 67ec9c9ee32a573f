"""HTTP clients for the gateway's one upstream, compared in one run: sequential POSTs to the scoring server's
/invocations through `httpx.AsyncClient`, `aiohttp.ClientSession` (as it comes, and lean: no cookie jar, no
automatic headers, the URL built once) and the gateway's own client (`gateway.upstream.UpstreamPool`, aiohttp),
alternated in rounds (the order rotates every round) so that a noisy host weighs on each alike.

    python -m benchmarks.upstream_clients [--requests 3000] [--rounds 6] [--gateway-port 8000 | --scoring-url URL]

Each client keeps one connection alive, sends the gateway's own scoring request (one known title, top 10, param
format=json) and reads the whole answer. Figures: p50/p99 over all rounds per client, each round's p50, and the
p50 ratios to the fastest library.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import httpx
import uvloop
import yarl

from benchmarks.common import scoring_port, summary, write_result
from gateway.upstream import UpstreamPool

BODY = json.dumps({"inputs": [{"title": "Heat", "top_n": 10}], "params": {"mode": "recommend", "format": "json"}})
BODY_BYTES = BODY.encode()
HEADERS = {"content-type": "application/json"}

Post = Callable[[], Awaitable[None]]


async def open_httpx(url: str, stack: AsyncExitStack) -> Post:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10, limits=limits))

    async def post() -> None:
        response = await client.post("/invocations", content=BODY_BYTES, headers=HEADERS)
        assert response.status_code == 200, response.status_code

    return post


async def open_aiohttp(url: str, stack: AsyncExitStack) -> Post:
    session = await stack.enter_async_context(
        aiohttp.ClientSession(
            base_url=url,
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=10, sock_connect=1),
        )
    )

    async def post() -> None:
        async with session.post("/invocations", data=BODY_BYTES, headers=HEADERS) as response:
            await response.read()
            assert response.status == 200, response.status

    return post


async def open_gateway_client(url: str, stack: AsyncExitStack) -> Post:
    pool = UpstreamPool(url, max_connections=1)
    stack.push_async_callback(pool.close)

    async def post() -> None:
        status, _ = await pool.post("/invocations", BODY_BYTES)
        assert status == 200, status

    return post


async def open_aiohttp_lean(url: str, stack: AsyncExitStack) -> Post:
    session = await stack.enter_async_context(
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=10, sock_connect=1),
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            auto_decompress=False,
        )
    )
    target = yarl.URL(url + "/invocations", encoded=True)

    async def post() -> None:
        async with session.post(target, data=BODY_BYTES, headers=HEADERS) as response:
            await response.read()
            assert response.status == 200, response.status

    return post


CLIENTS = {
    "httpx_async_client": open_httpx,
    "aiohttp_client_session": open_aiohttp,
    "aiohttp_client_session_lean": open_aiohttp_lean,
    "gateway_client": open_gateway_client,
}
LIBRARIES = ("httpx_async_client", "aiohttp_client_session", "aiohttp_client_session_lean")


async def timed(post: Post, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        await post()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def measure(url: str, n: int, rounds: int) -> dict[str, Any]:
    names = list(CLIENTS)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    round_p50: dict[str, list[float]] = {name: [] for name in names}
    async with AsyncExitStack() as stack:
        posts = {name: await opener(url, stack) for name, opener in CLIENTS.items()}
        for post in posts.values():
            await timed(post, 100)  # warm-up: connection open, code paths hot
        per_round = max(1, n // rounds)
        for index in range(rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            for name in order:
                values = await timed(posts[name], per_round)
                latencies[name] += values
                round_p50[name].append(summary(values)["p50_ms"])
    figures: dict[str, Any] = {
        name: {**summary(values), "round_p50_ms": round_p50[name]} for name, values in latencies.items()
    }
    best = min(LIBRARIES, key=lambda name: figures[name]["p50_ms"])
    figures["fastest_library"] = best
    for name in names:
        figures[f"ratio_p50_{name}_over_{best}"] = round(figures[name]["p50_ms"] / figures[best]["p50_ms"], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per client, over all rounds")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--gateway-port", type=int, default=8000, help="its /health names the scoring server")
    parser.add_argument("--scoring-url", help="the scoring server itself, instead of asking the gateway")
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help="uvicorn runs the gateway on uvloop"
    )
    args = parser.parse_args()
    url = args.scoring_url or f"http://127.0.0.1:{scoring_port(args.gateway_port)}"
    run = uvloop.run if args.loop == "uvloop" else asyncio.run
    figures = run(measure(url, args.requests, args.rounds))
    write_result("upstream_clients", {"loop": args.loop, **figures})


if __name__ == "__main__":
    main()
