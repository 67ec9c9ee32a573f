"""What the supervisor needs of whoever sends requests to the scoring servers (the gateway's scoring client):
where the followed alias's requests go, and where the standby alias's (the canary's and the shadow's) may go."""

from __future__ import annotations

from typing import Protocol


class Route(Protocol):
    """The requests sent to one scoring server."""

    async def drain(self, timeout_s: float) -> bool:
        """Wait until none of them is in flight (True) or `timeout_s` seconds passed (False), then close the
        connections to that server."""
        ...


class Router(Protocol):
    """Sends each new request to one scoring server, and labels the answer with the model version it serves."""

    def switch(self, url: str, name: str, version: str, build_run_id: str | None) -> Route:
        """From now on send new requests to `url`, labelled as version `version` of registered model `name` (built by
        run `build_run_id`); requests already sent finish where they are. Returns the route used until now."""
        ...

    def offer_challenger(self, url: str, name: str, version: str, build_run_id: str | None) -> None:
        """Version `version` of the standby alias is warm at `url`: canary and shadow requests may go there."""
        ...

    def withdraw_challenger(self) -> Route | None:
        """Send no more requests to the challenger; returns the route they took (None when none was offered)."""
        ...
