"""Client of the scoring server (`mlflow models serve`): the model's HTTP contract, and nothing of its code.

Requests go to `POST /invocations` as `{"inputs": [query], "params": {...}}`; the answer is
`{"predictions": [record]}`. Transport failures become GatewayError subclasses (503 / 504 / 502); the scoring
server's own error bodies carry stack traces, which are logged here and never passed on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from mlflow.tracking import MlflowClient

from gateway.errors import ScoringFailed, ScoringTimeout, ScoringUnavailable
from gateway.schemas import RecommendationRequest
from gateway.upstream import UpstreamDropped, UpstreamError, UpstreamPool, UpstreamTimeout, UpstreamUnavailable

logger = logging.getLogger(__name__)

INVOCATIONS = "/invocations"
PING = "/ping"


@dataclass
class ModelIdentity:
    """Which registered model version the scoring server is serving (None until learned)."""

    name: str | None = None
    version: str | None = None
    build_run_id: str | None = None


class ScoringClient:
    """Sends queries to the scoring server over one pool of keep-alive connections (gateway/upstream.py)."""

    def __init__(self, upstream: UpstreamPool, tracking_uri: str) -> None:
        self.upstream = upstream
        self._tracking_uri = tracking_uri
        self.identity = ModelIdentity()
        self._refreshing: asyncio.Task[ModelIdentity] | None = None

    async def recommend(self, request: RecommendationRequest) -> dict[str, Any]:
        """The model's record for one request: status, reason, query, liked, unresolved, recommendations..."""
        return await self._one(request.model_inputs(), "recommend")

    async def search(self, text: str, limit: int) -> dict[str, Any]:
        """Films whose titles match `text`, best first: status, results."""
        return await self._one({"title": text, "top_n": limit}, "search")

    async def film(self, film_id: int) -> dict[str, Any]:
        """One film's details: status (ok or not_found), film."""
        return await self._one({"id": film_id}, "film")

    async def _one(self, row: dict[str, Any], mode: str) -> dict[str, Any]:
        predictions = await self._invoke({"inputs": [row], "params": {"mode": mode}})
        if not isinstance(predictions, list) or len(predictions) != 1 or not isinstance(predictions[0], dict):
            logger.error("scoring server answered an unexpected shape: %.500s", predictions)
            raise ScoringFailed()
        if self.identity.version is None and self._refreshing is None:
            # Started before the scoring server (or the registry) was ready: learn the version in the background.
            self._refreshing = asyncio.create_task(self.refresh_identity())
            self._refreshing.add_done_callback(self._refreshed)
        return predictions[0]

    def _refreshed(self, _: asyncio.Task[ModelIdentity]) -> None:
        self._refreshing = None

    async def ping(self) -> bool:
        try:
            status, _ = await self.upstream.get(PING)
        except UpstreamError:
            return False
        return status == 200

    async def refresh_identity(self) -> ModelIdentity:
        """Ask the served model who it is, then the registry which version that is; keeps the last answer on failure."""
        try:
            info = (await self._invoke({"inputs": [{}], "params": {"mode": "info"}}))[0]
        except Exception as error:  # noqa: BLE001 - identity is best effort; requests are unaffected
            logger.warning("could not ask the scoring server which model it serves: %s", error)
            return self.identity
        name, run_id = info.get("model_name"), info.get("build_run_id")
        if run_id != self.identity.build_run_id or self.identity.version is None:
            version = await anyio.to_thread.run_sync(self._registered_version, name, run_id)
            self.identity = ModelIdentity(name, version, run_id)
        return self.identity

    def _registered_version(self, name: str | None, run_id: str | None) -> str | None:
        if not name or not run_id:
            return None
        try:
            versions = MlflowClient(self._tracking_uri).search_model_versions(f"name='{name}' and run_id='{run_id}'")
        except Exception as error:  # noqa: BLE001 - the registry being down must not break serving
            logger.warning("could not look up the served model's version: %s", error)
            return None
        return max((v.version for v in versions), key=int, default=None)

    async def _invoke(self, payload: dict[str, Any]) -> Any:
        try:
            status, body = await self.upstream.post(INVOCATIONS, orjson.dumps(payload))
        except UpstreamUnavailable as error:
            raise ScoringUnavailable() from error
        except UpstreamTimeout as error:
            raise ScoringTimeout() from error
        except UpstreamDropped as error:
            logger.error("scoring server dropped the connection: %s", error)
            raise ScoringFailed() from error
        if status != 200:
            logger.error("scoring server answered %d: %s", status, body[:5000].decode(errors="replace"))
            raise ScoringFailed()
        try:
            return orjson.loads(body)["predictions"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            logger.error("scoring server answered unreadable JSON: %.500s", body.decode(errors="replace"))
            raise ScoringFailed() from error
