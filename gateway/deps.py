"""FastAPI dependencies: the app's shared parts, reached through `Annotated` aliases to keep routes short."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from gateway.answers import RecentAnswers
from gateway.covers import Covers
from gateway.errors import Unauthorized
from gateway.event_log import EventLog
from gateway.history import Histories
from gateway.request_log import RequestLogger
from gateway.scoring import ScoringClient
from gateway.traffic import Traffic
from supervisor.supervisor import Supervisor


# `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per dependency per request.
async def get_scoring(request: Request) -> ScoringClient:
    return request.app.state.scoring


async def get_covers(request: Request) -> Covers:
    return request.app.state.covers


async def get_request_log(request: Request) -> RequestLogger:
    return request.app.state.request_log


async def get_event_log(request: Request) -> EventLog:
    return request.app.state.events


async def get_answers(request: Request) -> RecentAnswers:
    return request.app.state.answers


async def get_histories(request: Request) -> Histories:
    return request.app.state.histories


async def get_traffic(request: Request) -> Traffic:
    return request.app.state.traffic


async def get_supervisor(request: Request) -> Supervisor | None:
    return request.app.state.supervisor


async def require_api_key(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="required when GATEWAY_API_KEY is set")] = None,
) -> None:
    """401 unless the X-API-Key header matches GATEWAY_API_KEY (compared in constant time); open when unset."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    given = (x_api_key or "").encode()
    if not hmac.compare_digest(given, expected.get_secret_value().encode()):
        raise Unauthorized()


ScoringDep = Annotated[ScoringClient, Depends(get_scoring)]
CoversDep = Annotated[Covers, Depends(get_covers)]
RequestLogDep = Annotated[RequestLogger, Depends(get_request_log)]
EventLogDep = Annotated[EventLog, Depends(get_event_log)]
AnswersDep = Annotated[RecentAnswers, Depends(get_answers)]
HistoriesDep = Annotated[Histories, Depends(get_histories)]
TrafficDep = Annotated[Traffic, Depends(get_traffic)]
SupervisorDep = Annotated[Supervisor | None, Depends(get_supervisor)]
