"""What the supervisor shows of itself (the gateway's /health carries it as `supervisor`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SupervisorState:
    """Where the aliases point, what is served, and what went wrong; times are seconds."""

    alias: str  # NAME@ALIAS followed
    target: str | None = None  # where the alias pointed at the last successful look
    serving: str | None = None
    serving_url: str | None = None
    serving_since: float | None = None  # Unix time of the switch
    stale: bool = False  # serving the last champion from its local copy, the registry not asked since the start
    switching_to: str | None = None
    restarts: int = 0
    switches: int = 0
    last_switch_s: float | None = None  # alias seen moved -> new version serving
    failed: dict[str, str] = field(default_factory=dict)  # version -> why it was not switched to
    last_failure: str | None = None
    registry_error: str | None = None
    standby_alias: str | None = None
    standby_target: str | None = None  # where the standby alias pointed at the last look
    standby_version: str | None = None  # being started, or warm
    standby_url: str | None = None  # set once warm
    standby_failed: dict[str, str] = field(default_factory=dict)

    @property
    def troubled(self) -> bool:
        """The registry cannot be asked (or has not confirmed the version served from memory), or the alias points at
        a version that failed to start."""
        return self.registry_error is not None or self.stale or (self.target is not None and self.target in self.failed)

    def public(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "target_version": self.target,
            "serving_version": self.serving,
            "serving_url": self.serving_url,
            "serving_since": self.serving_since,
            "stale": self.stale,
            "switching_to": self.switching_to,
            "switches": self.switches,
            "last_switch_s": self.last_switch_s,
            "restarts": self.restarts,
            "failed_versions": dict(self.failed),
            "last_failure": self.last_failure,
            "registry_error": self.registry_error,
            "standby": {
                "alias": self.standby_alias,
                "target_version": self.standby_target,
                "version": self.standby_version,
                "ready": self.standby_url is not None,
                "url": self.standby_url,
                "failed_versions": dict(self.standby_failed),
            },
        }
