"""The FastAPI application factory: one pooled HTTP client, one request logger, routes and error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway.errors import install_error_handlers
from gateway.request_log import RequestLogger
from gateway.routes import router
from gateway.scoring import ScoringClient
from gateway.settings import Settings
from gateway.upstream import UpstreamPool

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upstream = UpstreamPool(
            settings.scoring_url, settings.max_connections, settings.connect_timeout_s, settings.timeout_s
        )
        app.state.settings = settings
        app.state.scoring = ScoringClient(upstream, settings.tracking_uri)
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
        )
        app.state.request_log.start()
        try:
            await app.state.scoring.refresh_identity()
            logger.info("gateway ready: scoring %s, model %s", settings.scoring_url, app.state.scoring.identity)
            yield
        finally:
            app.state.request_log.stop()
            await upstream.close()

    app = FastAPI(
        title="Movie recommender gateway",
        summary="Films similar to a title, from the movie-recommender model served by MLflow.",
        version="1.0.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(router)
    return app
