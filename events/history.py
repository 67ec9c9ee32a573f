"""A user's recent history, as "for you" recommendations read it: one indexed query by user, then a summary.

`recent_events` reads a user's most recent feedback events, newest first: the index on (`user`, `at`) walks them in
that order and the query stops at its limit, so the cost is bounded whatever the user's whole history holds.
`summarise` turns events (read from the store, or still queued in the gateway) into what a request is made of:
films the user likes, films they turned down, and films they keep being shown and never take.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from events.tables import feedback

POSITIVE = ("like", "click")
SINK_AFTER_SHOWN = 3  # shown in this many answers, never clicked, liked or dismissed: the film sinks


@dataclass(frozen=True)
class UserEvent:
    """One feedback event of a user: `key` makes it count once (events.records.Feedback.key_of); `at` in UTC."""

    key: str
    film_id: int
    event: str
    at: datetime


@dataclass(frozen=True)
class History:
    """What a user's events say, by catalog id.

    `liked`: films liked or clicked, oldest first by their latest like or click (the model weighs the last most);
    `disliked`: films dismissed after their latest like or click (if any), oldest first; `sinking`: films shown in
    at least SINK_AFTER_SHOWN answers and never clicked, liked or dismissed."""

    liked: tuple[int, ...] = ()
    disliked: tuple[int, ...] = ()
    sinking: frozenset[int] = field(default_factory=frozenset)


def recent_events(engine: Engine, user: str, limit: int) -> list[UserEvent]:
    """The `limit` most recent feedback events of `user`, newest first."""
    query = (
        select(feedback.c.key, feedback.c.film_id, feedback.c.event, feedback.c.at)
        .where(feedback.c.user == user)
        .order_by(feedback.c.at.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [UserEvent(key, int(film_id), event, _utc(at)) for key, film_id, event, at in rows]


def summarise(events: Iterable[UserEvent]) -> History:
    """The History of `events` (in any order; an event whose key repeats counts once)."""
    unique = {event.key: event for event in events}.values()
    positive: dict[int, datetime] = {}
    dismissed: dict[int, datetime] = {}
    shown: dict[int, int] = {}
    for event in unique:
        if event.event in POSITIVE:
            positive[event.film_id] = max(event.at, positive.get(event.film_id, event.at))
        elif event.event == "dismiss":
            dismissed[event.film_id] = max(event.at, dismissed.get(event.film_id, event.at))
        elif event.event == "shown":
            shown[event.film_id] = shown.get(event.film_id, 0) + 1
    disliked = {film: at for film, at in dismissed.items() if film not in positive or positive[film] < at}
    liked = {film: at for film, at in positive.items() if film not in disliked}
    taken = positive.keys() | dismissed.keys()
    return History(
        liked=_oldest_first(liked),
        disliked=_oldest_first(disliked),
        sinking=frozenset(film for film, n in shown.items() if n >= SINK_AFTER_SHOWN and film not in taken),
    )


def _oldest_first(films: dict[int, datetime]) -> tuple[int, ...]:
    return tuple(sorted(films, key=lambda film: (films[film], film)))


def _utc(moment: datetime) -> datetime:
    """SQLite keeps no time zone: its times are UTC (events/store.py stores them so)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
