"""Gateway settings, from `GATEWAY_*` environment variables (or a `.env` file; see `.env.example`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.covers import template_fields


class Settings(BaseSettings):
    """Where the gateway listens, what it talks to, and how long it waits."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    host: str = Field(
        "127.0.0.1",
        description="address the gateway binds (0.0.0.0: every interface), the one process of the stack meant to be "
        "exposed; the tracking and scoring servers bind addresses of their own, loopback by default",
    )
    port: int = 8000
    scoring_url: str = Field("http://127.0.0.1:5001", description="base URL of `mlflow models serve`")
    connect_timeout_s: float = Field(1.0, gt=0, description="give up connecting to the scoring server after this")
    timeout_s: float = Field(10.0, gt=0, description="give up waiting for a prediction after this (then 504)")
    max_connections: int = Field(64, ge=1, description="pooled connections to the scoring server")

    tracking_uri: str = Field("http://127.0.0.1:5000", description="MLflow tracking server for request logs")
    experiment: str = Field("movie-recommendations", description="experiment that receives one run per request")
    request_log: bool = Field(True, description="log each request as an MLflow run")
    log_queue_size: int = Field(10_000, ge=1, description="request logs held while tracking is slow or down")
    tracking_timeout_s: float = Field(
        5.0,
        gt=0,
        description="timeout of each MLflow call this process makes (request log, registry), in whole seconds "
        "rounded up; MLflow itself does not retry (MLFLOW_HTTP_REQUEST_TIMEOUT and _MAX_RETRIES, when set, win)",
    )
    retry_backoff_s: float = Field(1.0, gt=0, description="first wait before retrying a failed request log")
    log_mode: Literal["per_request", "grouped", "auto"] = Field(
        "auto", description="one run per request; many queued requests per run (grouped); per request until behind"
    )
    log_group_size: int = Field(1000, ge=1, description="requests per run at most, in grouped and auto modes")
    log_auto_backlog: int = Field(50, ge=1, description="queued requests at which auto mode starts grouping")
    log_flush_interval_s: float = Field(
        10.0, ge=0, description="grouped runs are written at most this often (sooner when a whole group waits)"
    )

    events: bool = Field(True, description="record impressions and feedback in the event store")
    events_uri: str = Field(
        "sqlite:///.run/events.db",
        description="the event store: a SQLite file (created, nothing to start) or postgresql://USER@HOST/DB, the "
        "password in PGPASSWORD or ~/.pgpass",
    )
    events_queue_size: int = Field(100_000, ge=1, description="events held while the event store is slow or down")
    feedback_window: int = Field(
        50_000, ge=1, description="answers remembered in memory to check feedback against (older ones: the store)"
    )
    history: bool = Field(
        True, description='complete a request that has `user` from that user\'s recent feedback ("for you")'
    )
    history_events: int = Field(500, ge=1, description="a user's most recent feedback events read per request")
    history_timeout_s: float = Field(
        0.25, gt=0, description="how long a request waits for its user's history before answering without it"
    )
    canary_percent: float = Field(
        0, ge=0, le=100, description="share of users (sticky; without user: of requests) the challenger answers"
    )
    shadow_percent: float = Field(
        0, ge=0, le=100, description="share of champion answers also scored by the challenger after they are sent"
    )
    challenger_url: str | None = Field(
        None, description="the challenger's scoring server for `python -m gateway` (the supervisor picks its own)"
    )

    max_body_bytes: int = Field(64 * 1024, ge=1, description="larger request bodies get 413")
    api_key: SecretStr | None = Field(None, description="when set, /movies/* require it in the X-API-Key header")
    cors_origins: list[str] = Field([], description="browser origins allowed to call the API (none by default)")

    cover_url_template: str | None = Field(
        None,
        description="cover of a film the catalog has no image for: a URL with {imdb_id}, {id}, {title} or {year} "
        "filled in (URL-encoded); a film lacking one of them, or every film when unset, gets the gateway's generated "
        "cover, /movies/{id}/cover.svg",
        examples=["https://posters.example.com/{imdb_id}.jpg?key=YOUR_KEY"],
    )

    supervise: bool = Field(
        False,
        description="run the supervisor in this process (set by `python -m gateway serve`); it reads its own "
        "GATEWAY_* settings (supervisor/settings.py) and picks the scoring server instead of `scoring_url`",
    )

    log_level: str = "INFO"
    access_log: bool = Field(
        False,
        description="uvicorn's line per request, in the gateway's log and in the scoring servers' it starts "
        "(the MLflow request log has every request)",
    )

    @field_validator("cover_url_template")
    @classmethod
    def _names_known_placeholders(cls, template: str | None) -> str | None:
        if template:
            template_fields(template)  # raises, naming what is wrong
        return template or None
