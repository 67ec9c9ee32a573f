"""Every error the gateway returns, in one JSON shape: `{"detail": str, "code": str, ...}`.

| status | code                  | when                                                        |
| ------ | --------------------- | ----------------------------------------------------------- |
| 404    | `unknown_title`       | no film matches the title; carries `suggestions`            |
| 404    | `not_found`           | no such route, or no film with that id                      |
| 405    | `method_not_allowed`  | wrong HTTP method                                           |
| 422    | `invalid_request`     | the body does not match the request schema; carries `errors`|
| 502    | `scoring_error`       | the scoring server failed (its stack trace is logged only)  |
| 503    | `scoring_unavailable` | the scoring server cannot be reached                        |
| 504    | `scoring_timeout`     | the scoring server did not answer in time                   |
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

UNKNOWN_TITLE = "No film matches this title."
INVALID_REQUEST = "The request body is not valid."
FILM_NOT_FOUND = "No film has this id."
SCORING_UNAVAILABLE = "The recommendation model is unreachable; try again shortly."
SCORING_TIMEOUT = "The recommendation model did not answer in time."
SCORING_ERROR = "The recommendation model failed to answer."


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


class UnknownTitle(GatewayError):
    status_code, code, detail = 404, "unknown_title", UNKNOWN_TITLE


class FilmNotFound(GatewayError):
    status_code, code, detail = 404, "not_found", FILM_NOT_FOUND


class InvalidQuery(GatewayError):
    status_code, code, detail = 422, "invalid_request", INVALID_REQUEST


class ScoringUnavailable(GatewayError):
    status_code, code, detail = 503, "scoring_unavailable", SCORING_UNAVAILABLE


class ScoringTimeout(GatewayError):
    status_code, code, detail = 504, "scoring_timeout", SCORING_TIMEOUT


class ScoringFailed(GatewayError):
    status_code, code, detail = 502, "scoring_error", SCORING_ERROR


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the shared JSON shape."""

    @app.exception_handler(GatewayError)
    async def _gateway_error(_: Request, error: GatewayError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [_describe(item) for item in error.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or INVALID_REQUEST
        return JSONResponse({"detail": detail, "code": "invalid_request", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        return JSONResponse({"detail": str(error.detail), "code": code}, status_code=error.status_code)


def _describe(item: dict[str, Any]) -> dict[str, str]:
    """One validation problem without echoing the offending input back (it may be huge or hostile)."""
    field = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
    return {"field": field, "message": str(item.get("msg", "invalid value"))}
