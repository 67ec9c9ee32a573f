"""Why the gateway has its own upstream client: one sequential POST to the scoring server's /invocations through
`httpx.AsyncClient` (what the gateway used before) and through `gateway.upstream.UpstreamPool`, in one run.

    python -m benchmarks.upstream_clients [--requests 2000] [--gateway-port 8000]        (after `make up`)

Both clients keep one connection alive, send the same body (one known title, top 10) and read the whole answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx

from benchmarks.common import scoring_port, summary, write_result
from gateway.upstream import UpstreamPool

BODY = json.dumps({"inputs": [{"title": "Heat", "top_n": 10}]}).encode()


async def with_httpx(url: str, n: int) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for _ in range(n):
            started = time.perf_counter()
            response = await client.post("/invocations", content=BODY, headers={"content-type": "application/json"})
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def with_upstream_pool(url: str, n: int) -> list[float]:
    latencies = []
    pool = UpstreamPool(url, max_connections=1)
    try:
        for _ in range(n):
            started = time.perf_counter()
            status, _ = await pool.post("/invocations", BODY)
            assert status == 200, status
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        await pool.close()
    return latencies


async def measure(url: str, n: int) -> dict:
    figures = {}
    for name, client in (("httpx_async_client", with_httpx), ("upstream_pool", with_upstream_pool)):
        await client(url, 100)  # warm-up
        figures[name] = summary(await client(url, n))
    figures["ratio_p50_upstream_over_httpx"] = round(
        figures["upstream_pool"]["p50_ms"] / figures["httpx_async_client"]["p50_ms"], 3
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--gateway-port", type=int, default=8000, help="its /health names the scoring server")
    args = parser.parse_args()
    url = f"http://127.0.0.1:{scoring_port(args.gateway_port)}"
    write_result("upstream_clients", asyncio.run(measure(url, args.requests)))


if __name__ == "__main__":
    main()
