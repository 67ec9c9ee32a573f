"""The FastAPI application factory: one pooled HTTP client, one request logger, routes and error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway.deps import require_api_key
from gateway.errors import BodyLimit, install_error_handlers
from gateway.request_log import RequestLogger
from gateway.routes import movies, router
from gateway.scoring import ScoringClient
from gateway.settings import Settings
from gateway.supervisor import Supervisor
from gateway.upstream import UpstreamPool

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Supervised, nothing serves until the supervisor's first server is warm: until then requests get 503.
        first = f"http://{settings.serve_host}:{settings.serve_port}" if settings.supervise else settings.scoring_url
        upstream = UpstreamPool(first, settings.max_connections, settings.connect_timeout_s, settings.timeout_s)
        app.state.settings = settings
        app.state.scoring = ScoringClient(upstream, settings.tracking_uri)
        app.state.supervisor = None
        if settings.supervise:
            app.state.scoring.backend.pinned = True  # the supervisor names the version it starts
            app.state.supervisor = Supervisor(settings, app.state.scoring)
        app.state.request_log = RequestLogger(
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
        app.state.request_log.start()
        try:
            if app.state.supervisor is not None:
                await app.state.supervisor.start()
                logger.info("gateway up; supervising %s", app.state.supervisor.state.alias)
            else:
                await app.state.scoring.refresh_identity()
                logger.info("gateway ready: scoring %s, model %s", settings.scoring_url, app.state.scoring.identity)
            yield
        finally:
            if app.state.supervisor is not None:
                await app.state.supervisor.stop()
            app.state.request_log.stop()
            await app.state.scoring.upstream.close()

    app = FastAPI(
        title="Movie recommender gateway",
        summary="Films similar to a title, from the movie-recommender model served by MLflow.",
        version="1.0.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # The key check only where a key is set: an open gateway (the default) skips a dependency FastAPI would
    # otherwise solve on every request (30-100 us of CPU per recommendation here: python -m benchmarks.gateway_cpu).
    app.include_router(movies, dependencies=[Depends(require_api_key)] if settings.api_key is not None else [])
    app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:  # closed unless configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key"],
        )
    return app
