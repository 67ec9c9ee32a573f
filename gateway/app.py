"""The FastAPI application factory: the scoring client, the request logger, the event log and the canary/shadow
traffic, the supervisor when asked for, routes and error handlers."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from gateway.answers import RecentAnswers
from gateway.covers import Covers
from gateway.deps import require_api_key
from gateway.errors import BodyLimit, install_error_handlers
from gateway.event_log import EventLog
from gateway.feedback import feedback
from gateway.history import Histories
from gateway.request_log import RequestLogger
from gateway.routes import STATIC, movies, router
from gateway.scoring import ScoringClient
from gateway.settings import Settings
from gateway.traffic import Shadow, Traffic
from supervisor.settings import SupervisorSettings
from supervisor.supervisor import Supervisor

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, supervisor_settings: SupervisorSettings | None = None) -> FastAPI:
    """The gateway; with `settings.supervise`, it runs the supervisor too (configured by `supervisor_settings`, by
    default its GATEWAY_* variables with the gateway's own tracking URI and access-log choice)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_mlflow_client(settings)
        app.state.settings = settings
        app.state.covers = Covers(settings.cover_url_template)
        app.state.supervisor = _supervisor(settings, supervisor_settings)
        app.state.scoring = _scoring(settings, app.state.supervisor)
        app.state.request_log = _request_log(settings)
        app.state.request_log.start()
        app.state.events = EventLog(settings.events_uri, queue_size=settings.events_queue_size, enabled=settings.events)
        app.state.events.start()
        app.state.answers = RecentAnswers(settings.feedback_window)
        app.state.histories = Histories(
            app.state.events, settings.history, settings.history_events, settings.history_timeout_s
        )
        app.state.traffic = Traffic(settings.canary_percent, Shadow(settings.shadow_percent, app.state.events.submit))
        try:
            if app.state.supervisor is not None:
                await app.state.supervisor.start(app.state.scoring)
                logger.info("gateway up; supervising %s", app.state.supervisor.state.alias)
            else:
                await app.state.scoring.refresh_identity()
                if app.state.scoring.challenger is not None:
                    await app.state.scoring.refresh_identity(app.state.scoring.challenger)
                logger.info("gateway ready: scoring %s, model %s", settings.scoring_url, app.state.scoring.identity)
            yield
        finally:
            await app.state.traffic.shadow.stop()
            if app.state.supervisor is not None:
                await app.state.supervisor.stop()
            app.state.request_log.stop()
            app.state.events.stop()
            await app.state.scoring.close()

    app = FastAPI(
        title="Movie recommender gateway",
        summary="Films similar to a title, from the movie-recommender model served by MLflow.",
        version="1.0.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # the X-API-Key header is checked, and documented, only where a key is set
    keyed = [Depends(require_api_key)] if settings.api_key is not None else []
    app.include_router(movies, dependencies=keyed)
    app.include_router(feedback, dependencies=keyed)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:  # closed unless configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key"],
        )
    return app


def configure_mlflow_client(settings: Settings) -> None:
    """How every MLflow call of this process behaves (the request log's, the supervisor's registry and downloads):
    no retries inside MLflow and `tracking_timeout_s` per call, because each caller retries in its own loop (the
    request log with backoff, the supervisor at its next poll) and MLflow's own retries would hide an outage for
    minutes. Explicit MLFLOW_* environment settings win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(math.ceil(settings.tracking_timeout_s)))
    # MLflow prints "View run ... at: URL" to stdout for every run it finishes: thousands of lines under load.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _supervisor(settings: Settings, supervisor_settings: SupervisorSettings | None) -> Supervisor | None:
    if not settings.supervise:
        return None
    return Supervisor(
        supervisor_settings or SupervisorSettings(tracking_uri=settings.tracking_uri, access_log=settings.access_log)
    )


def _scoring(settings: Settings, supervisor: Supervisor | None) -> ScoringClient:
    """Unsupervised, the scoring server at `scoring_url`; supervised, nothing answers until the supervisor's first
    server is warm (requests get 503 until then), and the supervisor names each version it starts."""
    if supervisor is None:
        return ScoringClient(settings, settings.scoring_url, challenger_url=settings.challenger_url)
    aliases = (supervisor.settings.model_alias, supervisor.settings.standby_alias)
    return ScoringClient(settings, supervisor.first_url, pinned=True, aliases=aliases)


def _request_log(settings: Settings) -> RequestLogger:
    return RequestLogger(
        settings.tracking_uri,
        settings.experiment,
        queue_size=settings.log_queue_size,
        timeout_s=settings.tracking_timeout_s,
        backoff_s=settings.retry_backoff_s,
        enabled=settings.request_log,
        mode=settings.log_mode,
        group_size=settings.log_group_size,
        auto_backlog=settings.log_auto_backlog,
        flush_interval_s=settings.log_flush_interval_s,
    )
