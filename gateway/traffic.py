"""Canary and shadow traffic: which version answers a request, and the challenger's second opinion after it.

Canary: `canary_percent` of users are answered by the challenger. The choice hashes the user with both versions, so
the same user meets the same version while the setting and the versions stay, and a new challenger draws a new
share. A request without `user` is assigned by chance, per request.

Shadow: `shadow_percent` of the requests the champion answered are scored again by the challenger once the answer
has been sent; the overlap of the two lists and the challenger's latency go to the event store. At most
`MAX_SHADOW_IN_FLIGHT` run at once (more are skipped and counted), and a challenger that cannot be reached pauses
shadowing for `SHADOW_PAUSE_S`: a shadow copy never delays, fails or queues behind an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from events.records import ShadowResult
from gateway.errors import GatewayError, ScoringTimeout, ScoringUnavailable

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
BUCKETS = 10_000  # shares are resolved to 0.01%
MAX_SHADOW_IN_FLIGHT = 16
SHADOW_PAUSE_S = 30.0
SHADOW_K = 10  # overlap@k: the report's overlap@10
NO_CHALLENGER = "no challenger is served"


def bucket(user: str, champion: str | None, challenger: str | None) -> int:
    """A user's fixed place in [0, BUCKETS) for this pair of versions."""
    digest = hashlib.blake2b(f"{champion}\x1f{challenger}\x1f{user}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_share(percent: float, user: str | None, champion: str | None, challenger: str | None) -> bool:
    """Whether a request falls in `percent` of traffic: by the user's bucket (sticky), else by chance."""
    if percent <= 0:
        return False
    place = bucket(user, champion, challenger) if user is not None else random.randrange(BUCKETS)
    return place < percent * BUCKETS / 100


def overlap_at(k: int, first: list[int], second: list[int]) -> float:
    """|top k of first ∩ top k of second| / k."""
    return len(set(first[:k]) & set(second[:k])) / k


@dataclass
class ShadowCounts:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # over MAX_SHADOW_IN_FLIGHT, or while paused


class Shadow:
    """Scores copies of answered requests on the challenger, in the background, and records how they compare."""

    def __init__(self, percent: float, record: Callable[[ShadowResult], None]) -> None:
        self.percent = percent
        self.counts = ShadowCounts()
        self._record = record
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused_until = 0.0
        self.last_error: str | None = None

    def wanted(self) -> bool:
        """Whether this request gets a shadow copy (drawn per request)."""
        return self.percent > 0 and random.random() * 100 < self.percent

    async def start(self, request_id: str, answered: list[int], top_n: int, score: ScoreChallenger) -> None:
        """Start a shadow copy in the background (called after the answer went out), unless too many run or the
        challenger was found away lately."""
        if len(self._tasks) >= MAX_SHADOW_IN_FLIGHT or time.monotonic() < self._paused_until:
            self.counts.skipped += 1
            return
        self.counts.sent += 1
        task = asyncio.create_task(self._compare(request_id, answered, min(SHADOW_K, top_n), score))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _compare(self, request_id: str, answered: list[int], k: int, score: ScoreChallenger) -> None:
        started = time.perf_counter()
        status, overlap, name, version = "ok", None, None, None
        try:
            ids, name, version = await score()
            overlap = overlap_at(k, answered, ids)
        except GatewayError as error:
            status = {ScoringUnavailable: "unavailable", ScoringTimeout: "timeout"}.get(type(error), "failed")
            self.last_error = f"{error.code}: {error.detail}"
            if isinstance(error, ScoringUnavailable):
                self._paused_until = time.monotonic() + SHADOW_PAUSE_S
        except Exception as error:  # a shadow copy must never surface
            status, self.last_error = "failed", f"{type(error).__name__}: {error}"
            logger.exception("shadow copy of %s failed", request_id)
        self.counts.ok += status == "ok"
        self.counts.failed += status != "ok"
        latency = (time.perf_counter() - started) * 1000 if status == "ok" else None
        self._record(ShadowResult(request_id, datetime.now(UTC), name, version, k, overlap, latency, status))

    def health(self) -> dict[str, Any]:
        paused = max(0.0, self._paused_until - time.monotonic())
        return {
            "percent": self.percent,
            "in_flight": len(self._tasks),
            "sent": self.counts.sent,
            "ok": self.counts.ok,
            "failed": self.counts.failed,
            "skipped": self.counts.skipped,
            "paused_s": round(paused, 1) if paused else None,
            "last_error": self.last_error,
        }

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# The challenger's answer to the same request: (recommended ids in order, model name, version); raises GatewayError.
ScoreChallenger = Callable[[], Awaitable[tuple[list[int], str | None, str | None]]]


class Traffic:
    """Which version answers each request (the canary's share), and the shadow copies of champion answers."""

    def __init__(self, canary_percent: float, shadow: Shadow) -> None:
        self.canary_percent = canary_percent
        self.shadow = shadow
        self.answered: dict[str, int] = {}  # by the alias that chose the answering version

    def to_challenger(self, champion: str | None, challenger: str | None, served: bool, user: str | None) -> bool:
        """Whether the challenger (version `challenger`; `served`: whether one is) answers this request."""
        return served and in_share(self.canary_percent, user, champion, challenger)

    def count(self, alias: str | None) -> None:
        key = alias or "unknown"
        self.answered[key] = self.answered.get(key, 0) + 1

    def health(self, champion: str | None, challenger: str | None, served: bool) -> dict[str, Any]:
        """The split as set and as answered, and the shadow's counts; `reason` says why neither runs."""
        active = served
        return {
            "champion_version": champion,
            "challenger_version": challenger,
            "canary_percent": self.canary_percent,
            "canary_active": active and self.canary_percent > 0,
            "shadow_active": active and self.shadow.percent > 0,
            "reason": None if active else NO_CHALLENGER,
            "answered": dict(self.answered),
            "shadow": self.shadow.health(),
        }
