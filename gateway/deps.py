"""FastAPI dependencies: the app's shared parts, reached through `Annotated` aliases to keep routes short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.request_log import RequestLogger
from gateway.scoring import ScoringClient
from gateway.settings import Settings


# `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per dependency per request.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_scoring(request: Request) -> ScoringClient:
    return request.app.state.scoring


async def get_request_log(request: Request) -> RequestLogger:
    return request.app.state.request_log


SettingsDep = Annotated[Settings, Depends(get_settings)]
ScoringDep = Annotated[ScoringClient, Depends(get_scoring)]
RequestLogDep = Annotated[RequestLogger, Depends(get_request_log)]
