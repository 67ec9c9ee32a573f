"""The HTTP API: recommendations, title search, film details, health."""

from __future__ import annotations

import functools
import json
import logging
import pathlib
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from events.records import Impression
from gateway.answers import Answer
from gateway.covers import COVER_ROUTE, draw_cover, etag
from gateway.deps import (
    AnswersDep,
    CoversDep,
    EventLogDep,
    HistoriesDep,
    RequestLogDep,
    ScoringDep,
    SupervisorDep,
    TrafficDep,
)
from gateway.errors import (
    FilmNotFound,
    GatewayError,
    InvalidQuery,
    NotReady,
    ScoringUnavailable,
    UnknownTitle,
    model_headers,
)
from gateway.health_schemas import HealthResponse, ReadyResponse
from gateway.history import Personal, personalise
from gateway.request_log import RequestRecord
from gateway.schemas import (
    ErrorResponse,
    FilmDetails,
    GenresResponse,
    RecommendationRequest,
    RecommendationResponse,
    SearchResponse,
    ServedModel,
    at_most,
    bounds,
)
from gateway.scoring import ModelIdentity, Scored, ScoringClient
from model.contract import DEFAULT_SEARCH, MAX_ID, MAX_SEARCH, MAX_TITLE_CHARS, search_reason

logger = logging.getLogger(__name__)

STATIC = pathlib.Path(__file__).parent / "static"  # the page: plain HTML, CSS and JavaScript, no build step

COVER_CACHE = "public, max-age=86400"  # a day: a cover changes only when a new model version renames its film
# The page loads nothing but its own files and the API's answers; covers may come from a template's image host.
PAGE_POLICY = (
    "default-src 'self'; img-src * data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
FilmId = Annotated[int, Path(ge=0, le=MAX_ID)]
REQUEST_ID_HEADER = "x-request-id"

router = APIRouter()
movies = APIRouter()  # /movies/*: create_app adds the X-API-Key check when GATEWAY_API_KEY is set

_UPSTREAM: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "GATEWAY_API_KEY is set and X-API-Key does not match."},
    413: {"model": ErrorResponse, "description": "The body is larger than 64 KiB."},
    422: {"model": ErrorResponse, "description": "The request is not valid."},
    502: {"model": ErrorResponse, "description": "The scoring server failed."},
    503: {"model": ErrorResponse, "description": "The scoring server is unreachable."},
    504: {"model": ErrorResponse, "description": "The scoring server timed out."},
}


@movies.post(
    "/movies/recommendations/",
    response_model=RecommendationResponse,
    responses={
        **_UPSTREAM,
        404: {
            "model": ErrorResponse,
            "description": "`unknown_title`: no query film matches, see `suggestions`; `unknown_user`: a request of "
            "a user alone, who has no history yet.",
        },
        503: {
            "model": ErrorResponse,
            "description": "`scoring_unavailable`; or `events_unavailable`: a request of a user alone while the event "
            "store is away.",
        },
    },
)
async def recommend(
    request: RecommendationRequest,
    scoring: ScoringDep,
    request_log: RequestLogDep,
    covers: CoversDep,
    events: EventLogDep,
    answers: AnswersDep,
    traffic: TrafficDep,
    histories: HistoriesDep,
    http: Request,
) -> Response:
    """Movies for a title, liked and disliked films and/or free text, with filters, diversity and paging; with
    `user`, that user's history too ("for you": `user` alone is enough once they liked or clicked a film).

    `request_id` names the answer for feedback; `model` (and the `X-Model-Name`, `X-Model-Version` headers) the
    version that answered and the alias that chose it; `history` what of the user's history was used."""
    started, request_id = time.perf_counter(), uuid.uuid4().hex
    served, challenger = scoring.identity, scoring.challenger
    challenger_version = challenger.identity.version if challenger is not None else None
    canary = traffic.to_challenger(served.version, challenger_version, challenger is not None, request.user)
    try:
        personal = await personalise(request, histories)
        result, served = await _score_personal(scoring, personal, canary)
        http.state.served = served
        body = shape_response(result, served, request_id)
        body["history"] = personal.used
        covers.fill(answered_films(body), str(http.base_url))
    except GatewayError as error:
        request_log.submit(_record(request, request_id, started, error.code, error.status_code, 0, served))
        raise
    films = [(film["id"], film["score"]) for film in body["recommendations"]]
    traffic.count(served.alias)
    if events.enabled:
        answers.add(request_id, Answer(tuple(film for film, _ in films), request.user))
        events.submit(_impression(request, request_id, served, films, personal.kind))
    request_log.submit(_record(request, request_id, started, "ok", 200, len(films), served))
    shadow = None
    if not canary and challenger is not None and traffic.shadow.wanted():
        score = functools.partial(_challenger_ids, scoring, personal.request)
        shadow = BackgroundTask(traffic.shadow.start, request_id, [f for f, _ in films], request.top_n, score)
    # The model's records already follow the response schema (the integration tests check it): they are passed on
    # as they are, not rebuilt field by field.
    headers = {**model_headers(served), REQUEST_ID_HEADER: request_id}
    return Response(orjson.dumps(body), media_type="application/json", headers=headers, background=shadow)


async def _score(scoring: ScoringClient, request: RecommendationRequest, canary: bool) -> Scored:
    """The champion's answer, or the challenger's for the canary; a challenger that cannot be reached leaves the
    request to the champion rather than failing it."""
    if canary:
        try:
            return await scoring.recommend(request, challenger=True)
        except ScoringUnavailable:
            logger.warning("the challenger cannot be reached: its canary request goes to the champion")
    return await scoring.recommend(request)


async def _score_personal(scoring: ScoringClient, personal: Personal, canary: bool) -> Scored:
    """The answer to a request completed from history, its sinking films moved last; when a history film
    contradicts one of the request's own (liked there, dismissed here), the request's own films with the history's
    only excluded."""
    result, served = await _score(scoring, personal.request, canary)
    if personal.conflicts(result) and personal.fallback is not None:
        result, served = await _score(scoring, personal.fallback, canary)
    return personal.shape(result), served


async def _challenger_ids(
    scoring: ScoringClient, request: RecommendationRequest
) -> tuple[list[int], str | None, str | None]:
    """The challenger's recommendations (ids in order) for a request the champion answered, and its name, version."""
    result, identity = await scoring.recommend(request, challenger=True)
    if result.get("status") != "ok":
        raise InvalidQuery(result.get("reason") or result.get("status"))
    return [film["id"] for film in result["recommendations"]], identity.name, identity.version


def _impression(
    request: RecommendationRequest,
    request_id: str,
    served: ModelIdentity,
    films: list[tuple[int, float]],
    kind: str | None = None,
) -> Impression:
    """What the event store keeps of an answered request (the user's id, never in the MLflow request log); `kind`:
    what it was asked from, when history decided it."""
    asked = [name for name in ("title", "liked", "query") if getattr(request, name)]
    kind = kind or (asked[0] if len(asked) == 1 else "mixed")
    return Impression(
        request_id, datetime.now(UTC), request.user, served.name, served.version, served.alias, kind, tuple(films)
    )


@movies.get("/movies/search", response_model=SearchResponse, responses=_UPSTREAM)
async def search(
    scoring: ScoringDep,
    http: Request,
    response: Response,
    q: Annotated[
        str,
        Query(description="title text; typos tolerated", json_schema_extra=at_most(MAX_TITLE_CHARS, "characters")),
    ],
    limit: Annotated[int, Query(description="how many films", json_schema_extra=bounds(1, MAX_SEARCH))] = (
        DEFAULT_SEARCH
    ),
) -> SearchResponse:
    """Films whose titles match `q`, for autocomplete and for picking among films that share a title."""
    reason = search_reason(q, limit)
    if reason is not None:
        raise InvalidQuery(reason)
    result, served = await scoring.search(q, limit)
    _answered_by(http, response, served)
    return SearchResponse(results=_ok(result)["results"], model=_served(served))


@movies.get("/movies/genres", response_model=GenresResponse, responses=_UPSTREAM)
async def genres(scoring: ScoringDep, http: Request, response: Response) -> GenresResponse:
    """Every genre of the served catalog with its number of films: the names `genres` filters take."""
    result, served = await scoring.info()
    _answered_by(http, response, served)
    return GenresResponse(genres=_ok(result).get("genres") or [], model=_served(served))


@movies.get(
    "/movies/{film_id}",
    response_model=FilmDetails,
    responses={404: {"model": ErrorResponse, "description": "No film has this id."}, **_UPSTREAM},
)
async def film(
    scoring: ScoringDep, covers: CoversDep, http: Request, response: Response, film_id: FilmId
) -> FilmDetails:
    """One film's details."""
    details = await _film(scoring, http, film_id)
    _answered_by(http, response, http.state.served)
    covers.fill([details], str(http.base_url))
    return FilmDetails(**details)


@router.get(
    COVER_ROUTE,
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "An SVG poster, 200 x 300."},
        304: {"description": "The cover named by If-None-Match has not changed."},
        404: {"model": ErrorResponse, "description": "No film has this id."},
        **_UPSTREAM,
    },
)
async def cover(
    scoring: ScoringDep,
    http: Request,
    film_id: FilmId,
    if_none_match: Annotated[str | None, Header(description="an ETag of this cover the client holds")] = None,
) -> Response:
    """The gateway's cover of a film: title, year and director on a colour of its genres. Open without the API key,
    like the page: an `<img>` sends no headers."""
    svg = draw_cover(await _film(scoring, http, film_id))
    tag = etag(svg)
    headers = {"ETag": tag, "Cache-Control": COVER_CACHE, "Content-Security-Policy": "default-src 'none'"}
    headers.update(model_headers(http.state.served))
    if if_none_match is not None and (if_none_match.strip() == "*" or tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(svg, media_type="image/svg+xml", headers=headers)


async def _film(scoring: ScoringDep, http: Request, film_id: int) -> dict[str, Any]:
    """One film's record, from the served model; FilmNotFound when no film has this id."""
    result, served = await scoring.film(film_id)
    http.state.served = served
    if result.get("status") == "not_found":
        raise FilmNotFound()
    return _ok(result)["film"]


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The page: search, recommendations as cards, filters (gateway/static/)."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Content-Security-Policy": PAGE_POLICY})


@router.get("/health", response_model=HealthResponse)
async def health(
    scoring: ScoringDep, request_log: RequestLogDep, events: EventLogDep, traffic: TrafficDep, supervisor: SupervisorDep
) -> HealthResponse:
    """Whether the gateway can serve: scoring server reachable, which model version it serves, request log and event
    store state, the canary and shadow split, and (under `python -m gateway serve`) the supervisor's: alias target,
    switches, restarts, failed versions."""
    reachable = await scoring.ping()
    identity = await scoring.refresh_identity() if reachable else scoring.identity
    challenger = scoring.challenger
    if challenger is not None and challenger.identity.version is None:
        await scoring.refresh_identity(challenger)
    log_state, event_state = request_log.health(), events.health()
    supervisor_state = supervisor.state.public() if supervisor is not None else None
    # degraded: nothing answers, request logs cannot be written, the registry cannot be asked, or the alias points
    # at a version that failed to start (the previous one keeps serving)
    degraded = (
        not reachable
        or log_state["tracking_reachable"] is False
        or event_state["database_reachable"] is False
        or (supervisor is not None and supervisor.state.troubled)
    )
    return HealthResponse(
        status="degraded" if degraded else "ok",
        scoring={"url": scoring.url, "reachable": reachable},
        model=_served(identity),
        request_log=log_state,
        events=event_state,
        traffic=traffic.health(
            identity.version, challenger.identity.version if challenger else None, challenger is not None
        ),
        supervisor=supervisor_state,
    )


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ErrorResponse, "description": "No scoring server answers yet."}},
)
async def ready(scoring: ScoringDep) -> ReadyResponse:
    """200 once a scoring server answers (what `make up` and load balancers wait for), 503 until then."""
    if not await scoring.ping():
        raise NotReady()
    return ReadyResponse(ready=True, model=_served(scoring.identity))


def shape_response(result: dict[str, Any], identity: ModelIdentity, request_id: str) -> dict[str, Any]:
    """The model's record for one request as the API response (RecommendationResponse); outcomes become errors."""
    if result.get("status") == "unknown_title":
        raise UnknownTitle(suggestions=result.get("suggestions") or [], unresolved=result.get("unresolved") or [])
    result = _ok(result)
    return {
        "query": result.get("query"),
        "liked": result.get("liked") or [],
        "disliked": result.get("disliked") or [],
        "unresolved": result.get("unresolved") or [],
        "recommendations": result["recommendations"],
        "offset": result.get("offset", 0),
        "top_n": result.get("top_n", len(result["recommendations"])),
        "model": _served(identity).model_dump(),
        "request_id": request_id,
    }


def answered_films(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every film record of a recommendation response: the query film, liked, disliked, recommendations."""
    query = [body["query"]] if body.get("query") else []
    return query + body["liked"] + body["disliked"] + body["recommendations"]


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    if result.get("status") != "ok":
        raise InvalidQuery(result.get("reason") or None)
    return result


def _answered_by(http: Request, response: Response, served: ModelIdentity) -> None:
    """Name the version that answered, on this response and on an error raised after it."""
    http.state.served = served
    response.headers.update(model_headers(served))


def _served(identity: ModelIdentity) -> ServedModel:
    return ServedModel(name=identity.name, version=identity.version, alias=identity.alias)


def _record(
    request: RecommendationRequest,
    request_id: str,
    started: float,
    status: str,
    http_status: int,
    n_returned: int,
    identity: ModelIdentity,
) -> RequestRecord:
    """What the request log keeps of one recommendation request (`started`: its `time.perf_counter()`)."""
    return RequestRecord(
        title=request.title or "",
        top_n=request.top_n,
        year=request.year,
        status=status,
        http_status=http_status,
        n_returned=n_returned,
        latency_ms=(time.perf_counter() - started) * 1000,
        model_version=identity.version,
        extra={"request_id": request_id, **_extra_params(request)},
    )


def _extra_params(request: RecommendationRequest) -> dict[str, str]:
    """The richer fields of a request as short run params (absent when not used)."""
    extra: dict[str, str] = {}
    for name in ("liked", "disliked", "exclude", "within"):
        films = getattr(request, name)
        if films:
            extra[f"n_{name}"] = str(len(films))
    if request.query:
        extra["query"] = request.query[:250]
    filters = request.model_dump(include={"genres", "exclude_genres", "year_min", "year_max"}, exclude_none=True)
    if filters:
        extra["filters"] = json.dumps(filters, ensure_ascii=False)[:500]
    if request.diversity:
        extra["diversity"] = str(request.diversity)
    if request.offset:
        extra["offset"] = str(request.offset)
    return extra
