"""Feedback on answers, and forgetting a user: `POST /movies/feedback`, `DELETE /movies/users/{user}`.

Each event is checked against the answer it names (gateway/answers.py) and counted once per (request, film, event);
accepted events are queued for the event store, which writes them in the background (gateway/event_log.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from events.records import Feedback
from gateway.answers import Answer, RecentAnswers
from gateway.deps import AnswersDep, EventLogDep, HistoriesDep
from gateway.errors import (
    EVENTS_OFF,
    EventsUnavailable,
    GatewayError,
    InvalidQuery,
    NotInAnswer,
    UnknownRequest,
)
from gateway.event_log import EventLog
from gateway.schemas import (
    ErrorResponse,
    EventError,
    FeedbackBatch,
    FeedbackEvent,
    FeedbackResponse,
    ForgetResponse,
    at_most,
)
from model.contract import MAX_USER_CHARS, user_reason

FORGET_WAIT_S = 5.0  # how long DELETE waits for the event store before answering 202 (forgotten when it is back)

UserId = Annotated[str, Path(description="the app's user id", json_schema_extra=at_most(MAX_USER_CHARS, "characters"))]

feedback = APIRouter()


@dataclass
class Judged:
    """The events of one feedback body, sorted: accepted (to write), duplicates, refused (by index)."""

    accepted: list[Feedback] = field(default_factory=list)
    duplicates: int = 0
    errors: list[tuple[int, GatewayError]] = field(default_factory=list)


@feedback.post(
    "/movies/feedback",
    status_code=202,
    response_model=FeedbackResponse,
    responses={
        404: {"model": ErrorResponse, "description": "`unknown_request`: no answer has this request_id."},
        422: {"model": ErrorResponse, "description": "`not_in_answer`, or `invalid_request`."},
        503: {"model": ErrorResponse, "description": "`events_unavailable`: the event store cannot check it now."},
    },
)
async def send_feedback(
    body: Annotated[FeedbackEvent | FeedbackBatch, Body(description='one event, or `{"events": [...]}`')],
    events: EventLogDep,
    answers: AnswersDep,
    histories: HistoriesDep,
) -> JSONResponse:
    """Record what users did with the films of an answer: `shown`, `click`, `like`, `dismiss` (one event, or up to
    100); each counts once per request, film and event."""
    if not events.enabled:
        raise EventsUnavailable(EVENTS_OFF)
    items: list[Any] = body.events if isinstance(body, FeedbackBatch) else [body]
    judged = await judge(items, events, answers)
    if isinstance(body, FeedbackEvent) and judged.errors:
        raise judged.errors[0][1]
    for event in judged.accepted:
        events.submit(event)
        histories.recent.add(event)  # counts in the user's history at once, before the writer stores it
    errors = [EventError(index=i, code=e.code, detail=e.detail) for i, e in judged.errors]
    answer = FeedbackResponse(accepted=len(judged.accepted), duplicates=judged.duplicates, errors=errors)
    return JSONResponse(answer.model_dump(), status_code=202)


@feedback.delete(
    "/movies/users/{user}",
    response_model=ForgetResponse,
    responses={202: {"model": ForgetResponse, "description": "The event store is away: forgotten once it is back."}},
)
async def forget_user(
    user: UserId,
    events: EventLogDep,
    answers: AnswersDep,
    histories: HistoriesDep,
) -> JSONResponse:
    """Forget a user: their feedback events are deleted, and their impressions keep no link to them."""
    reason = user_reason(user)
    if reason is not None:
        raise InvalidQuery(reason)
    if not events.enabled:
        raise EventsUnavailable(EVENTS_OFF)
    answers.forget(user)
    histories.recent.forget(user)
    done = events.forget(user)
    try:
        deleted = await asyncio.wait_for(asyncio.wrap_future(done), FORGET_WAIT_S)
    except TimeoutError:
        return JSONResponse(ForgetResponse(user=user, deleted=None, pending=True).model_dump(), status_code=202)
    return JSONResponse(ForgetResponse(user=user, deleted=deleted, pending=False).model_dump())


async def judge(items: list[Any], events: EventLog, answers: RecentAnswers) -> Judged:
    """Check each event (a FeedbackEvent, or a batch's raw object) against the answer it names."""
    judged = Judged()
    now = datetime.now(UTC)
    for index, item in enumerate(items):
        try:
            event = item if isinstance(item, FeedbackEvent) else FeedbackEvent.model_validate(item)
            accepted = await _check(event, events, answers)
        except ValidationError as error:
            judged.errors.append((index, InvalidQuery(_reasons(error))))
            continue
        except GatewayError as error:
            judged.errors.append((index, error))
            continue
        if accepted is None:
            judged.duplicates += 1
        else:
            request_id, user = accepted
            key = Feedback.key_of(request_id, user, event.film_id, event.event)
            judged.accepted.append(Feedback(key, request_id, user, event.film_id, event.event, now))
    return judged


Attribution = tuple[str | None, str | None]  # (request_id, user) an event is recorded with


async def _check(event: FeedbackEvent, events: EventLog, answers: RecentAnswers) -> Attribution | None:
    """(request_id, user) to record the event with, None for a duplicate; GatewayError when it is refused."""
    if event.request_id is None:
        key = Feedback.key_of(None, event.user, event.film_id, event.event)
        return (None, event.user) if answers.first_user_event(key) else None
    answer = answers.get(event.request_id) or await _stored(event.request_id, events, answers)
    if event.film_id not in answer.films:
        raise NotInAnswer()
    pair = (event.film_id, event.event)
    if pair in answer.seen:
        return None
    answer.seen.add(pair)
    return event.request_id, event.user or answer.user


async def _stored(request_id: str, events: EventLog, answers: RecentAnswers) -> Answer:
    """The answer as the event store holds it (remembered from then on); UnknownRequest when it holds none."""
    try:
        stored = await anyio.to_thread.run_sync(events.answer, request_id)
    except Exception as error:
        raise EventsUnavailable() from error
    if stored is None:
        raise UnknownRequest()
    answer = Answer(tuple(stored.films), stored.user, set(stored.recorded))
    answers.add(request_id, answer)
    return answer


def _reasons(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'event'}: {item['msg']}" if item["loc"] else item["msg"]
        for item in error.errors()
    )
