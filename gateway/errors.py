"""Every error the gateway returns, in one JSON shape: `{"detail": str, "code": str, ...}`.

The statuses and codes clients are promised are the README's error table; tests/gateway/test_api.py checks every
refusal against it. FastAPI and Starlette raise their own HTTPException too: a status the table lists gets its code;
any other means the framework could not read the request (400: a body that is not UTF-8, or JSON nested too deeply
for the parser) and is answered as 422 `invalid_request`, so that no client meets a code the table does not list.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

UNKNOWN_TITLE = "No film matches this title."
UNAUTHORIZED = "A valid X-API-Key header is required."
INVALID_REQUEST = "The request body is not valid."
FILM_NOT_FOUND = "No film has this id."
SCORING_UNAVAILABLE = "The recommendation model is unreachable; try again shortly."
SCORING_TIMEOUT = "The recommendation model did not answer in time."
SCORING_ERROR = "The recommendation model failed to answer."
NOT_READY = "No scoring server answers yet."
PAYLOAD_TOO_LARGE = "The request body is larger than {limit} bytes."
BODY_NOT_UTF8 = "The body is not UTF-8 JSON."
BODY_UNREADABLE = "The body could not be read as JSON."
UNKNOWN_REQUEST = "No answer of this gateway has this request_id."
NOT_IN_ANSWER = "This film was not in the answer with this request_id."
EVENTS_UNAVAILABLE = "The event store cannot be reached to check this event; send it again shortly."
UNKNOWN_USER = "No history for this user yet: like or click a film first, or send a title, liked films or a query."
HISTORY_UNAVAILABLE = (
    "The event store cannot be reached to read this user's history; send a title, liked films or a query, or try "
    "again shortly."
)
EVENTS_OFF = "The event store is off (GATEWAY_EVENTS=false): no feedback is recorded."


class GatewayError(Exception):
    """An outcome the gateway reports to the client as `status_code` with the shared JSON shape."""

    status_code = 500
    code = "internal_error"
    detail = "Internal error."

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}


class Unauthorized(GatewayError):
    status_code, code, detail = 401, "unauthorized", UNAUTHORIZED


class UnknownTitle(GatewayError):
    status_code, code, detail = 404, "unknown_title", UNKNOWN_TITLE


class FilmNotFound(GatewayError):
    status_code, code, detail = 404, "not_found", FILM_NOT_FOUND


class InvalidQuery(GatewayError):
    status_code, code, detail = 422, "invalid_request", INVALID_REQUEST


class UnknownRequest(GatewayError):
    status_code, code, detail = 404, "unknown_request", UNKNOWN_REQUEST


class UnknownUser(GatewayError):
    status_code, code, detail = 404, "unknown_user", UNKNOWN_USER


class NotInAnswer(GatewayError):
    status_code, code, detail = 422, "not_in_answer", NOT_IN_ANSWER


class EventsUnavailable(GatewayError):
    status_code, code, detail = 503, "events_unavailable", EVENTS_UNAVAILABLE


class ScoringUnavailable(GatewayError):
    status_code, code, detail = 503, "scoring_unavailable", SCORING_UNAVAILABLE


class NotReady(GatewayError):
    status_code, code, detail = 503, "not_ready", NOT_READY


class ScoringTimeout(GatewayError):
    status_code, code, detail = 504, "scoring_timeout", SCORING_TIMEOUT


class ScoringFailed(GatewayError):
    status_code, code, detail = 502, "scoring_error", SCORING_ERROR


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the shared JSON shape."""

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, error: GatewayError) -> JSONResponse:
        # an outcome of a model that did answer (unknown title, bad query) still names the version that answered
        headers = model_headers(getattr(request.state, "served", None))
        return JSONResponse(error.body(), status_code=error.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return _invalid([_describe(item) for item in error.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code)
        if code is None:  # the framework could not read the request
            return _invalid([{"field": "body", "message": _unreadable(error)}])
        body = {"detail": str(error.detail), "code": code}
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)  # 405 names what is allowed


def model_headers(identity: Any) -> dict[str, str]:
    """`X-Model-Name` and `X-Model-Version` of the model version that answered (none when unknown)."""
    headers = {}
    if getattr(identity, "name", None):
        headers["x-model-name"] = identity.name
    if getattr(identity, "version", None):
        headers["x-model-version"] = identity.version
    return headers


def _invalid(errors: list[dict[str, str]]) -> JSONResponse:
    detail = "; ".join(_line(e) for e in errors) or INVALID_REQUEST
    return JSONResponse({"detail": detail, "code": "invalid_request", "errors": errors}, status_code=422)


def _unreadable(error: StarletteHTTPException) -> str:
    """Why the framework could not read the body (FastAPI raises its 400 from the parser's exception)."""
    return BODY_NOT_UTF8 if isinstance(error.__cause__, UnicodeDecodeError) else BODY_UNREADABLE


def _describe(item: dict[str, Any]) -> dict[str, str]:
    """One validation problem without echoing the offending input back (it may be huge or hostile)."""
    field = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
    return {"field": field, "message": str(item.get("msg", "invalid value"))}


def _line(error: dict[str, str]) -> str:
    """One problem for `detail`: a rule of the whole request (the contract's reason) reads as the reason itself."""
    return error["message"] if error["field"] == "body" else f"{error['field']}: {error['message']}"


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 in the shared error shape, before any parsing.

    Declared lengths are refused at once; bodies without one (chunked) are counted as they arrive. (FastAPI's own
    `max_body_size` answers a declared oversize length with plain text, outside the error shape.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not started:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}  # the app stops reading; what it answers is dropped
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(ClientDisconnect):
            await self.app(scope, counted, tracked)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": PAYLOAD_TOO_LARGE.format(limit=self.max_bytes), "code": "payload_too_large"}, 413
        )
        await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
