"""Steady load on a gateway during a test: clients posting one recommendation after another until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx

BODY = {"title": "Heat", "top_n": 5}


class Traffic:
    """What came back, and when: answers by (status, X-Model-Version), 0 for no answer at all; times are
    `time.monotonic()` seconds. Run it in a background thread with `with Traffic(url, n).in_thread() as load:`, or
    in a running event loop with `await traffic.run()` until `traffic.stop` is set (benchmarks/faults.py)."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url, self.concurrency = url, concurrency
        self.answers: Counter[tuple[int, str | None]] = Counter()
        self.first_from: dict[str | None, float] = {}  # version -> first 200 from it
        self.last_503: float | None = None
        self.recovered: float | None = None  # the first 200 after a 503
        self.stop = threading.Event()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[Traffic]:
        thread = threading.Thread(target=lambda: asyncio.run(self.run()), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(60)

    def statuses(self) -> Counter[int]:
        counts: Counter[int] = Counter()
        for (status, _), count in self.answers.items():
            counts[status] += count
        return counts

    @property
    def sent(self) -> int:
        return sum(self.answers.values())

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(self._client(client) for _ in range(self.concurrency)))

    async def _client(self, client: httpx.AsyncClient) -> None:
        while not self.stop.is_set():
            try:
                response = await client.post(f"{self.url}/movies/recommendations/", json=BODY)
                status, version = response.status_code, response.headers.get("x-model-version")
            except httpx.HTTPError:
                status, version = 0, None
            now = time.monotonic()
            self.answers[(status, version)] += 1
            if status == 200:
                self.first_from.setdefault(version, now)
                if self.last_503 is not None and self.recovered is None:
                    self.recovered = now
            elif status == 503:
                self.last_503 = now
                await asyncio.sleep(0.05)
