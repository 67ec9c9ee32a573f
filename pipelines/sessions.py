"""The simulator's sessions: MovieLens-100k users of the validation half, replayed after a global cutoff time.

A cutoff splits time for everyone (a quantile of every MovieLens like's timestamp, or a Unix time): a model built
from events before it cannot have seen what the simulator rewards. Each validation user with likes on both sides of
the cutoff gets a session at the time of each of their first likes from the cutoff on; a session asks with the films
the user liked before that time and rewards the films they liked from then on. No HTTP here: pipelines/simulate.py
drives the gateway with these sessions.

Reward rule: every film of an answer is `shown`; a shown film the user likes at or after the session time gets a
`click`, and also a `like` when they rated it 5 (MovieLens ratings are 1-5; a like is a rating of 4 or more).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.contract import MAX_FEEDBACK, MAX_FILMS
from pipelines.movielens import (
    LIKED_RATING,
    USER_KEY,
    VALIDATION,
    Behaviour,
    load_behaviour,
    match_items,
    read_movielens,
)

logger = logging.getLogger(__name__)

LOVED_RATING = 5  # a future film rated this earns a `like` beside its `click`
SHOWN, CLICK, LIKE = "shown", "click", "like"  # the gateway's feedback events

BAD_CUTOFF = "cutoff is a quantile of the like times (strictly between 0 and 1) or a Unix time in seconds, not {value}"
BAD_LIMIT = "{name} must be 0 (no limit) or more, not {value}"


@dataclass(frozen=True)
class Replay:
    """What the sessions are planned from: likes of both halves on catalog films (pipelines/movielens.py), the
    (MovieLens user, catalog id) pairs rated LOVED_RATING, and the timestamp (Unix seconds) of every MovieLens like,
    matched to the catalog or not: the cutoff quantile does not depend on the catalog."""

    behaviour: Behaviour
    loved: frozenset[tuple[int, int]]
    like_times: np.ndarray


@dataclass(frozen=True)
class Session:
    """One visit of a user: a request with `liked`, then feedback on the answer.

    `at`: the Unix time (seconds) of the like that opens it. `liked`: catalog ids liked before `at`, the most recent
    MAX_FILMS, oldest first. `future`: catalog ids liked at or after `at`, in time order. `loved`: those of `future`
    rated LOVED_RATING.
    """

    user: str
    at: int
    liked: tuple[int, ...]
    future: tuple[int, ...]
    loved: frozenset[int]


@dataclass(frozen=True)
class Plan:
    """The sessions to drive, in time order (then by user), and the cutoff (Unix seconds) they were planned with."""

    cutoff: int
    sessions: tuple[Session, ...]

    @property
    def users(self) -> int:
        return len({session.user for session in self.sessions})


def read_replay(movies: pd.DataFrame, folder: Path | None = None) -> Replay:
    """MovieLens-100k (read in place from the recbole package) matched to the catalog `movies` (columns id, title,
    year)."""
    behaviour = load_behaviour(movies, folder)
    ratings, items = read_movielens(folder)
    films = ratings["item"].map(match_items(items, movies))
    loved = ratings[(ratings["rating"] >= LOVED_RATING) & films.notna()]
    pairs = frozenset(zip(loved["user"].astype(int), films[loved.index].astype(int), strict=True))
    like_times = ratings.loc[ratings["rating"] >= LIKED_RATING, "timestamp"].to_numpy(dtype=np.int64)
    return Replay(behaviour, pairs, like_times)


def cutoff_time(cutoff: float, like_times: np.ndarray) -> int:
    """The cutoff as a Unix time: `cutoff` in (0, 1) is a quantile of `like_times` (a like time itself, the lower
    one between two); from 1 on it is a Unix time already."""
    if 0 < cutoff < 1:
        return int(np.quantile(like_times, cutoff, method="lower"))
    if cutoff >= 1:
        return int(cutoff)
    raise ValueError(BAD_CUTOFF.format(value=cutoff))


def plan_sessions(
    replay: Replay,
    cutoff: float = 0.8,
    *,
    sessions_per_user: int = 3,
    max_users: int = 0,
    max_sessions: int = 0,
    seed: int = 0,
) -> Plan:
    """Sessions of the validation half's users around the cutoff (see `cutoff_time`); the same arguments give the
    same plan. `sessions_per_user`, `max_users`, `max_sessions`: 0 for no limit. With `max_users`, that many users
    are drawn (seeded) from those with likes on both sides of the cutoff; `max_sessions` keeps the earliest."""
    for name, value in (
        ("sessions_per_user", sessions_per_user),
        ("max_users", max_users),
        ("max_sessions", max_sessions),
    ):
        if value < 0:
            raise ValueError(BAD_LIMIT.format(name=name, value=value))
    at = cutoff_time(cutoff, replay.like_times)
    likes = replay.behaviour.half(VALIDATION).likes.sort_values(["user", "timestamp", "film"], kind="stable")
    histories = {
        int(user): (group["film"].to_numpy(dtype=np.int64), group["timestamp"].to_numpy(dtype=np.int64))
        for user, group in likes.groupby("user", sort=True)
    }
    users = [user for user, (_, times) in histories.items() if times[0] < at <= times[-1]]
    if max_users and len(users) > max_users:
        users = sorted(np.random.default_rng(seed).choice(users, size=max_users, replace=False).tolist())
    sessions = [
        session
        for user in users
        for session in user_sessions(user, *histories[user], at, sessions_per_user, replay.loved)
    ]
    sessions.sort(key=lambda session: (session.at, session.user))
    if max_sessions:
        sessions = sessions[:max_sessions]
    logger.info("planned %d sessions of %d users, cutoff %d", len(sessions), len({s.user for s in sessions}), at)
    return Plan(at, tuple(sessions))


def user_sessions(
    user: int, films: np.ndarray, times: np.ndarray, cutoff: int, limit: int, loved: frozenset[tuple[int, int]]
) -> list[Session]:
    """One user's sessions: at the distinct times of their likes from `cutoff` on, the first `limit` (0: all).
    `films` and `times` are the user's likes in time order."""
    starts = np.unique(times[times >= cutoff])
    if limit:
        starts = starts[:limit]
    sessions = []
    for start in starts.tolist():
        before = int(np.searchsorted(times, start, side="left"))
        future = tuple(films[before:].tolist())
        sessions.append(
            Session(
                user=USER_KEY.format(user=user),
                at=start,
                liked=tuple(films[max(0, before - MAX_FILMS) : before].tolist()),
                future=future,
                loved=frozenset(film for film in future if (user, film) in loved),
            )
        )
    return sessions


def feedback_events(session: Session, request_id: str, films: list[int]) -> list[dict[str, Any]]:
    """The reward rule applied to an answer (`films`: its catalog ids in order): `shown` for each, then `click` for
    each in the session's future, then `like` for each the user rated LOVED_RATING."""
    future = set(session.future)
    events = [(film, SHOWN) for film in films]
    events += [(film, CLICK) for film in films if film in future]
    events += [(film, LIKE) for film in films if film in session.loved]
    return [{"request_id": request_id, "film_id": film, "event": event} for film, event in events]


def batches(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The events in feedback bodies of at most MAX_FEEDBACK each (one body for top_n up to 33)."""
    return [events[i : i + MAX_FEEDBACK] for i in range(0, len(events), MAX_FEEDBACK)]
