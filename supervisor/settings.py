"""Supervisor settings, from the same `GATEWAY_*` environment variables (or `.env`) as the gateway that runs it."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SupervisorSettings(BaseSettings):
    """Which model version to serve, where its scoring servers listen, and how long each step may take."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    tracking_uri: str = Field("http://127.0.0.1:5000", description="MLflow tracking server and model registry")
    model_name: str = Field("movie-recommender", description="registered model the supervisor serves")
    model_alias: str = Field("champion", description="alias the supervisor follows")
    standby_alias: str = Field(
        "challenger",
        description="alias whose version the supervisor keeps started and warm, so that moving `model_alias` to it "
        "switches at once; it gets only the gateway's canary and shadow shares (GATEWAY_CANARY_PERCENT, "
        "GATEWAY_SHADOW_PERCENT) of traffic; empty: no standby",
    )
    poll_s: float = Field(2.0, gt=0, description="how often the supervisor asks the registry where the alias points")
    serve_host: str = Field(
        "127.0.0.1",
        description="address the scoring servers bind and the gateway reaches them at; not the gateway's own "
        "(GATEWAY_HOST): keep it loopback, since a scoring server asks for no API key",
    )
    serve_port: int = Field(5001, ge=0, description="port of the first scoring server (a free one when taken)")
    serve_workers: int = Field(1, ge=1, description="`mlflow models serve --workers`")
    serve_start_timeout_s: float = Field(300.0, gt=0, description="a new scoring server must be warm within this")
    drain_timeout_s: float = Field(30.0, gt=0, description="in-flight requests get this long on a replaced server")
    state_dir: str = Field(
        ".run", description="PID files, logs and model copies of the scoring servers the supervisor started"
    )
    access_log: bool = Field(False, description="uvicorn's line per request in the scoring servers' logs")
