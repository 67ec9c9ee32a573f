"""The HTTP API: recommendations and health."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from gateway.deps import RequestLogDep, ScoringDep, SettingsDep
from gateway.errors import GatewayError, InvalidQuery, UnknownTitle
from gateway.request_log import RequestLogger, RequestRecord
from gateway.schemas import (
    ErrorResponse,
    HealthResponse,
    RecommendationRequest,
    RecommendationResponse,
    ServedModel,
)
from gateway.scoring import ModelIdentity

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No film matches the title; `suggestions` lists close titles."},
    422: {"model": ErrorResponse, "description": "The request body is not valid."},
    502: {"model": ErrorResponse, "description": "The scoring server failed."},
    503: {"model": ErrorResponse, "description": "The scoring server is unreachable."},
    504: {"model": ErrorResponse, "description": "The scoring server timed out."},
}


@router.post("/movies/recommendations/", response_model=RecommendationResponse, responses=_ERRORS)
async def recommend(
    request: RecommendationRequest, scoring: ScoringDep, request_log: RequestLogDep
) -> RecommendationResponse:
    """Movies similar to the given title."""
    started = time.perf_counter()
    try:
        result = await scoring.recommend(request)
        response = to_response(result, scoring.identity)
    except GatewayError as error:
        _log(request_log, request, started, error.code, error.status_code, 0, scoring.identity)
        raise
    _log(request_log, request, started, "ok", 200, len(response.recommendations), scoring.identity)
    return response


@router.get("/health", response_model=HealthResponse)
async def health(scoring: ScoringDep, request_log: RequestLogDep, settings: SettingsDep) -> HealthResponse:
    """Whether the gateway can serve: scoring server reachable, which model version it serves, request log state."""
    reachable = await scoring.ping()
    identity = await scoring.refresh_identity() if reachable else scoring.identity
    log_state = request_log.health()
    degraded = not reachable or log_state["tracking_reachable"] is False
    return HealthResponse(
        status="degraded" if degraded else "ok",
        scoring={"url": settings.scoring_url, "reachable": reachable},
        model=ServedModel(name=identity.name, version=identity.version),
        request_log=log_state,
    )


def to_response(result: dict[str, Any], identity: ModelIdentity) -> RecommendationResponse:
    """Shape the model's record for one query into the API response; domain outcomes become errors."""
    status = result.get("status")
    if status == "unknown_title":
        raise UnknownTitle(suggestions=result.get("suggestions") or [])
    if status != "ok":
        raise InvalidQuery(result.get("reason") or None)
    return RecommendationResponse(
        query=result["query"],
        recommendations=result["recommendations"],
        model=ServedModel(name=identity.name, version=identity.version),
    )


def _log(
    request_log: RequestLogger,
    request: RecommendationRequest,
    started: float,
    status: str,
    http_status: int,
    n_returned: int,
    identity: ModelIdentity,
) -> None:
    request_log.submit(
        RequestRecord(
            title=request.title,
            top_n=request.top_n,
            year=request.year,
            status=status,
            http_status=http_status,
            n_returned=n_returned,
            latency_ms=(time.perf_counter() - started) * 1000,
            model_version=identity.version,
        )
    )
