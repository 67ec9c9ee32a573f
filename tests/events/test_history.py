"""A user's history in the event store on a real SQLite file: the most recent events of that user only, newest first,
read through the (user, at) index; the summary's rules (liked oldest first, a later event wins, sinking).
tests/events/test_postgres.py runs the store tests again on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from events.history import SINK_AFTER_SHOWN, History, UserEvent, recent_events, summarise
from events.records import Feedback
from events.store import EventStore
from events.tables import feedback
from tests.events.test_store import AT, store, uri  # noqa: F401 - the fixtures


def at(minutes: int, request_id: str | None, film_id: int, name: str, user: str = "ann") -> Feedback:
    return Feedback(Feedback.key_of(request_id, user, film_id, name), request_id, user, film_id, name,
                    AT + timedelta(minutes=minutes))  # fmt: skip


def user_event(minutes: int, film_id: int, name: str, request_id: str | None = None) -> UserEvent:
    record = at(minutes, request_id, film_id, name)
    return UserEvent(record.key, record.film_id, record.event, record.at)


def test_the_most_recent_events_of_the_user_come_newest_first(store: EventStore) -> None:  # noqa: F811
    store.write([at(1, "r1", 11, "click"), at(3, None, 22, "like"), at(2, "r1", 33, "dismiss"),
                 at(4, "r2", 44, "like", user="bob")])  # fmt: skip
    events = recent_events(store.engine, "ann", limit=2)
    assert [(e.film_id, e.event, e.at) for e in events] == [
        (22, "like", AT + timedelta(minutes=3)),
        (33, "dismiss", AT + timedelta(minutes=2)),
    ]
    assert events[0].key == "u:ann:22:like" and events[0].at.tzinfo is not None
    assert recent_events(store.engine, "nobody", limit=10) == []


def test_the_lookup_walks_the_user_index_without_sorting(store: EventStore) -> None:  # noqa: F811
    query = select(feedback.c.key).where(feedback.c.user == "ann").order_by(feedback.c.at.desc()).limit(5)
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as connection:
        plan = " ".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert "ix_feedback_user_at" in plan and "TEMP B-TREE" not in plan


def test_liked_films_are_oldest_first_by_their_latest_like_or_click() -> None:
    history = summarise([user_event(5, 1, "like"), user_event(1, 2, "click", "r1"), user_event(3, 3, "like"),
                         user_event(6, 2, "like")])  # fmt: skip
    assert history.liked == (3, 1, 2)


def test_the_later_of_a_like_and_a_dismissal_wins() -> None:
    history = summarise([user_event(1, 1, "dismiss"), user_event(2, 1, "like"),
                         user_event(1, 2, "like"), user_event(2, 2, "dismiss")])  # fmt: skip
    assert (history.liked, history.disliked) == ((1,), (2,))


def test_a_film_shown_in_many_answers_and_never_taken_sinks() -> None:
    shown = [user_event(i, 7, "shown", f"r{i}") for i in range(SINK_AFTER_SHOWN)]
    assert summarise(shown).sinking == {7}
    assert summarise(shown[:-1]).sinking == set()  # one answer fewer
    assert summarise([*shown, shown[0]]).sinking == {7}  # a repeated event counts once
    assert summarise([*shown[:-1], shown[0]]).sinking == set()
    assert summarise([*shown, user_event(9, 7, "click", "r0")]) == History(liked=(7,))
    assert summarise([*shown, user_event(9, 7, "dismiss")]) == History(disliked=(7,))
