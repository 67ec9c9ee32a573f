"""Schemas of `/health` and `/ready`: what the gateway shows of its scoring servers, request log, event store,
canary and shadow traffic, and supervisor."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gateway.schemas import ServedModel


class RequestLogHealth(BaseModel):
    enabled: bool
    mode: str
    runs: int = Field(description="runs written (one per request, or per group of requests)")
    queued: int
    written: int
    rejected: int = Field(description="requests tracking refused for good (after repairs), dropped and counted")
    lost: int = Field(description="requests that found the queue full, or were still queued when the gateway stopped")
    tracking_reachable: bool | None
    last_error: str | None


class ScoringHealth(BaseModel):
    url: str
    reachable: bool


class StandbyHealth(BaseModel):
    alias: str | None = Field(description="the alias whose version is kept warm, as NAME@ALIAS; null: no standby")
    target_version: str | None = Field(description="where that alias pointed at the last look")
    version: str | None = Field(description="the version being started or kept warm (none when it is the served one)")
    ready: bool = Field(description="warm: moving the followed alias to `version` switches at once")
    url: str | None
    failed_versions: dict[str, str] = Field(description="standby versions that did not start, and why")


class SupervisorHealth(BaseModel):
    alias: str = Field(description="the registry alias followed, as NAME@ALIAS")
    target_version: str | None = Field(description="where the alias pointed at the last look")
    serving_version: str | None
    serving_url: str | None
    serving_since: float | None = Field(description="Unix time of the switch to the serving version")
    stale: bool = Field(
        description="serving the last champion from its local copy: the registry could not be asked at start, and "
        "has not confirmed the version since"
    )
    switching_to: str | None = Field(description="version being started and warmed up, if any")
    switches: int = Field(description="alias moves followed since the gateway started")
    last_switch_s: float | None = Field(description="seconds from seeing the alias move to serving the version")
    restarts: int = Field(description="times the serving process died and was started again")
    failed_versions: dict[str, str] = Field(
        description="versions not switched to, and why; retried when pointed at again"
    )
    last_failure: str | None
    registry_error: str | None = Field(description="why the registry could not be asked, while it cannot")
    standby: StandbyHealth


class EventsHealth(BaseModel):
    enabled: bool
    url: str | None = Field(description="the event store, without its password")
    written: int = Field(description="impressions, feedback events, shadow results and forgets written")
    duplicates: int = Field(description="events the store already held (counted once), skipped")
    queued: int
    lost: int = Field(description="events that found the queue full, or were still queued when the gateway stopped")
    rejected: int = Field(description="events the database refused for good, dropped and counted")
    database_reachable: bool | None
    last_error: str | None


class ShadowHealth(BaseModel):
    percent: float
    in_flight: int
    sent: int
    ok: int
    failed: int
    skipped: int = Field(description="copies not sent: too many in flight, or paused after the challenger was away")
    paused_s: float | None = Field(description="seconds until shadow copies resume after the challenger was away")
    last_error: str | None


class TrafficHealth(BaseModel):
    champion_version: str | None
    challenger_version: str | None = Field(description="the challenger served for canary and shadow; null: none")
    canary_percent: float
    canary_active: bool
    shadow_active: bool
    reason: str | None = Field(description="why neither canary nor shadow runs, when they do not")
    answered: dict[str, int] = Field(description="answers since start, by the alias that chose the version")
    shadow: ShadowHealth


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    scoring: ScoringHealth
    model: ServedModel
    request_log: RequestLogHealth
    events: EventsHealth
    traffic: TrafficHealth
    supervisor: SupervisorHealth | None = Field(None, description="present when run as `python -m gateway serve`")


class ReadyResponse(BaseModel):
    ready: Literal[True]
    model: ServedModel
