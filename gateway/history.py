"""For you: a recommendation request with `user` completed from that user's recent feedback.

The user's most recent events are read from the event store in a worker thread, with a timeout of their own
(events/history.py holds the query and the rules), together with the events this gateway accepted in the last
RECENT_S seconds, which the writer may not have stored yet. Only films reach the scoring server: liked and clicked
films join `liked` (before the request's own, which weigh most), dismissed ones `disliked`, films cut by the limits
`exclude`; films shown again and again without a click are asked for beyond `top_n` and moved after the others.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio

from events.history import History, UserEvent, summarise
from events.records import Feedback
from gateway.errors import HISTORY_UNAVAILABLE, EventsUnavailable, UnknownUser
from gateway.event_log import EventLog
from gateway.schemas import RecommendationRequest
from model.contract import LIKED_AND_DISLIKED, MAX_EXCLUDE, MAX_FILMS, MAX_TOP_N

logger = logging.getLogger(__name__)

RECENT_S = 60.0  # accepted events kept in memory this long: far beyond the writer's gathering (0.2 s) and a retry
RECENT_SIZE = 100_000  # accepted events kept in memory at most
RETRY_S = 5.0  # after a failed or slow lookup, requests answer without history this long before the store is asked
MAX_SUNK = 20  # sinking films asked for beyond top_n at most


class HistoryUnavailable(RuntimeError):
    """The event store could not give a user's history in time."""


class RecentFeedback:
    """Feedback events accepted lately, by user, oldest first; the oldest go after RECENT_S or past RECENT_SIZE."""

    def __init__(self, window_s: float = RECENT_S, size: int = RECENT_SIZE) -> None:
        self._window_s, self._size = window_s, size
        self._order: deque[tuple[float, Feedback]] = deque()
        self._by_user: dict[str, deque[Feedback]] = {}

    def add(self, record: Feedback) -> None:
        if record.user is None:
            return
        now = time.monotonic()
        self._order.append((now, record))
        self._by_user.setdefault(record.user, deque()).append(record)
        self._prune(now)

    def of(self, user: str) -> list[UserEvent]:
        self._prune(time.monotonic())
        return [UserEvent(r.key, r.film_id, r.event, r.at) for r in self._by_user.get(user, ())]

    def forget(self, user: str) -> None:
        self._by_user.pop(user, None)

    def _prune(self, now: float) -> None:
        while self._order and (len(self._order) > self._size or self._order[0][0] < now - self._window_s):
            _, old = self._order.popleft()
            theirs = self._by_user.get(old.user or "")
            if theirs and theirs[0] is old:  # not forgotten since
                theirs.popleft()
                if not theirs:
                    del self._by_user[old.user or ""]


class Histories:
    """Users' histories: the event store's (through the event log's store) merged with RecentFeedback's."""

    def __init__(self, events: EventLog, enabled: bool = True, limit: int = 500, timeout_s: float = 0.25) -> None:
        self.recent = RecentFeedback()
        self._events, self._enabled, self._limit, self._timeout_s = events, enabled, limit, timeout_s
        self._retry_at = 0.0

    @property
    def enabled(self) -> bool:
        return self._enabled and self._events.enabled

    async def of(self, user: str) -> History:
        """`user`'s history; HistoryUnavailable when the store is away or slower than the timeout."""
        stored = await self._stored(user)
        return summarise([*stored, *self.recent.of(user)])

    async def _stored(self, user: str) -> list[UserEvent]:
        if self._events.database_reachable is False or time.monotonic() < self._retry_at:
            raise HistoryUnavailable("the event store is away")
        try:
            with anyio.fail_after(self._timeout_s):
                # abandoned on timeout: the request goes on, the thread finishes its query on its own
                return await anyio.to_thread.run_sync(self._events.history, user, self._limit, abandon_on_cancel=True)
        except Exception as error:
            self._retry_at = time.monotonic() + RETRY_S
            logger.warning("history: the event store did not answer (%s); answering without it", type(error).__name__)
            raise HistoryUnavailable(str(error)) from error


@dataclass(frozen=True)
class Personal:
    """What is scored for one request (`request`: the user's films added; its `user` never leaves the gateway),
    the films to sink, and what of the history was used (None: nothing)."""

    request: RecommendationRequest
    top_n: int
    sinking: frozenset[int] = frozenset()
    used: dict[str, int] | None = None
    alone: bool = False  # the request named nothing but its user
    fallback: RecommendationRequest | None = field(default=None, compare=False)

    @property
    def kind(self) -> str | None:
        """The impression kind when history was used: `user` for a request of a user alone, else `mixed`."""
        if self.used is None:
            return None
        return "user" if self.alone else "mixed"

    def conflicts(self, result: dict[str, Any]) -> bool:
        """Whether the model refused the completed request because a history film is also one of the request's
        own on the other side (a title naming a film the user dismissed): `fallback` then only excludes them."""
        reason = result.get("reason") or ""
        return self.fallback is not None and reason.startswith(LIKED_AND_DISLIKED.split("{")[0])

    def shape(self, result: dict[str, Any]) -> dict[str, Any]:
        """The model's record with sinking films after the others, cut to the asked `top_n`."""
        if result.get("status") != "ok" or self.request.top_n == self.top_n:
            return result
        films = result["recommendations"]
        ordered = [f for f in films if f["id"] not in self.sinking] + [f for f in films if f["id"] in self.sinking]
        return {**result, "recommendations": ordered[: self.top_n], "top_n": self.top_n}


async def personalise(request: RecommendationRequest, histories: Histories) -> Personal:
    """`request` completed from its user's history. A request of a user alone: UnknownUser without history to
    recommend from, EventsUnavailable while the store is away; with films of its own it is answered from those."""
    plain = Personal(request, request.top_n)
    if request.user is None or not histories.enabled:
        return plain
    alone = not _names_films(request)
    try:
        history = await histories.of(request.user)
    except HistoryUnavailable as error:
        if alone:
            raise EventsUnavailable(HISTORY_UNAVAILABLE) from error
        return plain
    if alone and not history.liked:
        raise UnknownUser()
    return complete(request, history)


def complete(request: RecommendationRequest, history: History) -> Personal:
    """`request` with `history`'s films, within the contract's limits (the most recent kept, the rest excluded)."""
    own_liked, own_disliked = list(request.liked or ()), list(request.disliked or ())
    mine = {film for film in own_liked + own_disliked if isinstance(film, int)}
    liked = [film for film in history.liked if film not in mine]
    disliked = [film for film in history.disliked if film not in mine]
    kept_liked = _latest(liked, MAX_FILMS - len(own_liked))
    kept_disliked = _latest(disliked, MAX_FILMS - len(own_disliked))
    own_exclude = list(request.exclude or ())
    kept = {*kept_liked, *kept_disliked}
    cut = [film for film in liked + disliked if film not in kept]
    excluded = cut[: max(0, MAX_EXCLUDE - len(own_exclude))]
    sunk = min(len(history.sinking), MAX_SUNK, MAX_TOP_N - request.top_n)
    used = {"liked": len(kept_liked), "disliked": len(kept_disliked), "excluded": len(excluded), "sinking": sunk}
    if not any(used.values()):
        return Personal(request, request.top_n)
    all_out = (own_exclude + kept_liked + kept_disliked + excluded)[:MAX_EXCLUDE]
    return Personal(
        request=_with(request, kept_liked + own_liked, kept_disliked + own_disliked, own_exclude + excluded,
                      request.top_n + sunk),
        top_n=request.top_n,
        sinking=history.sinking if sunk else frozenset(),
        used=used,
        alone=not _names_films(request),
        fallback=_with(request, own_liked, own_disliked, all_out, request.top_n) if _names_films(request) else None,
    )  # fmt: skip


def _latest(films: list[int], room: int) -> list[int]:
    """The last `room` of `films` (oldest first), in order."""
    return films[-room:] if room > 0 else []


def _with(
    request: RecommendationRequest, liked: list[Any], disliked: list[Any], exclude: list[Any], top_n: int
) -> RecommendationRequest:
    """A copy of `request` with these lists (None when empty) and `top_n`; validated already, by construction."""
    lists = {"liked": liked or None, "disliked": disliked or None, "exclude": exclude or None}
    return request.model_copy(update={**lists, "top_n": top_n})


def _names_films(request: RecommendationRequest) -> bool:
    """Whether the request names a film or text of its own to recommend from (title, liked or query)."""
    return bool(request.title or request.liked or request.query)
