"""What the gateway hands the event store: one frozen record per fact, queued and written in groups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

EVENTS = ("shown", "click", "like", "dismiss")
KINDS = ("title", "liked", "query", "mixed", "user")  # what a recommendation request was asked from


@dataclass(frozen=True)
class Impression:
    """One answered recommendation request; `films`: (catalog id, score) in answer order."""

    request_id: str
    at: datetime
    user: str | None
    model_name: str | None
    model_version: str | None
    alias: str | None
    kind: str
    films: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Feedback:
    """One event on one film: of an answer (`request_id`), or of a user's own (no request)."""

    key: str
    request_id: str | None
    user: str | None
    film_id: int
    event: str
    at: datetime

    @staticmethod
    def key_of(request_id: str | None, user: str | None, film_id: int, event: str) -> str:
        """What makes an event count once: per (request, film, event), else per (user, film, event)."""
        if request_id is not None:
            return f"r:{request_id}:{film_id}:{event}"
        if user is None:
            raise ValueError("an event needs a request_id or a user")
        return f"u:{user}:{film_id}:{event}"


@dataclass(frozen=True)
class ShadowResult:
    """The challenger's answer to a request the champion answered: overlap@k of the two lists (None unless ok)."""

    request_id: str
    at: datetime
    model_name: str | None
    model_version: str | None
    k: int
    overlap: float | None
    latency_ms: float | None
    status: str  # ok, failed, timeout, unavailable


@dataclass(frozen=True)
class Forget:
    """Forget a user: their feedback is deleted and their impressions keep no link to them. Applied in queue
    order, so what was queued before it is forgotten too."""

    user: str


Record = Impression | Feedback | ShadowResult | Forget
