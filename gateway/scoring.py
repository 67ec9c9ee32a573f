"""Client of the scoring server (`mlflow models serve`): the model's HTTP contract, and nothing of its code.

Requests go to `POST /invocations` as `{"inputs": [query], "params": {"mode": ..., "format": "json"}}`; the answer
is `{"predictions": [record]}`, the record as its JSON text (param `format`, model/recommender.py: the scoring
server then encodes one string instead of walking the record with its pure-Python encoder). A model version built
before that param ignores it and answers the record as an object: the client accepts both, and stops asking that
server for text after the first such answer. Transport failures become GatewayError subclasses (503 / 504 / 502);
the scoring server's own error bodies carry stack traces, which are logged here and never passed on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from mlflow.tracking import MlflowClient

from gateway.errors import ScoringFailed, ScoringTimeout, ScoringUnavailable
from gateway.schemas import RecommendationRequest
from gateway.settings import Settings
from gateway.upstream import UpstreamDropped, UpstreamError, UpstreamPool, UpstreamTimeout, UpstreamUnavailable

logger = logging.getLogger(__name__)

INVOCATIONS = "/invocations"
PING = "/ping"
RECORDS_AS_TEXT = {"format": "json"}  # the model param that answers each record as its JSON text
IDENTITY_RETRY_S = 30.0  # an unknown version is asked for again at most this often (not on every request)


@dataclass
class ModelIdentity:
    """Which registered model version the scoring server is serving (None until learned)."""

    name: str | None = None
    version: str | None = None
    build_run_id: str | None = None
    alias: str | None = None  # the registry alias that chose this version for its requests


@dataclass
class Backend:
    """One scoring server and what it serves; a switch replaces the whole object, so a request that started on one
    backend finishes on it and is labelled with its version."""

    upstream: UpstreamPool
    identity: ModelIdentity = field(default_factory=ModelIdentity)
    pinned: bool = False  # identity named by whoever started the server (the supervisor), not learned
    asked_at: float | None = None  # time.monotonic() of the last attempt to learn the identity
    records_as_text: bool = True  # ask for param format=json; False once the model answered an object anyway

    @property
    def url(self) -> str:
        return self.upstream.url

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no request sent here is in flight (True) or `timeout_s` seconds passed (False), then close
        its connections."""
        return await self.upstream.drain(timeout_s)


Scored = tuple[dict[str, Any], ModelIdentity]


class ScoringClient:
    """Sends queries to the scoring server over one pool of keep-alive connections per server (gateway/upstream.py).

    It is the supervisor's router (`supervisor.router.Router`): `switch` sends new requests to another server, and
    `offer_challenger` / `withdraw_challenger` say which server, if any, serves the challenger for the canary and the
    shadow copies."""

    def __init__(
        self,
        settings: Settings,
        url: str,
        pinned: bool = False,
        challenger_url: str | None = None,
        aliases: tuple[str, str] = ("champion", "challenger"),
    ) -> None:
        """`aliases`: the registry aliases whose versions answer the champion's and the challenger's requests."""
        self._settings = settings
        self._aliases = aliases
        self.backend = Backend(self._pool(url), ModelIdentity(alias=aliases[0]), pinned=pinned)
        self.challenger: Backend | None = None
        if challenger_url:
            self.challenger = Backend(self._pool(challenger_url), ModelIdentity(alias=aliases[1]))
        self._refreshing: asyncio.Task[ModelIdentity] | None = None

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def identity(self) -> ModelIdentity:
        return self.backend.identity

    def switch(self, url: str, name: str, version: str, build_run_id: str | None) -> Backend:
        """Send new requests to `url`, labelled as `name` version `version`; returns the previous backend (its
        in-flight requests finish there; drain it)."""
        previous = self.backend
        identity = ModelIdentity(name, version, build_run_id, self._aliases[0])
        self.backend = Backend(self._pool(url), identity, pinned=True)
        return previous

    def offer_challenger(self, url: str, name: str, version: str, build_run_id: str | None) -> None:
        """The challenger's version `version` is warm at `url`: canary and shadow requests may go there."""
        identity = ModelIdentity(name, version, build_run_id, self._aliases[1])
        self.challenger = Backend(self._pool(url), identity, pinned=True)

    def withdraw_challenger(self) -> Backend | None:
        """No challenger to send requests to any more; returns its backend (drain it before stopping its server)."""
        challenger, self.challenger = self.challenger, None
        return challenger

    async def close(self) -> None:
        await self.backend.upstream.close()
        if self.challenger is not None:
            await self.challenger.upstream.close()

    async def recommend(self, request: RecommendationRequest, challenger: bool = False) -> Scored:
        """The model's record for one request (status, reason, query, liked, unresolved, recommendations...) and
        the version that answered: the champion's, or with `challenger` the challenger's (when one is served)."""
        if challenger and self.challenger is not None:
            backend = self.challenger
            return await invoke_one(backend, request.model_inputs(), "recommend"), backend.identity
        return await self._one(request.model_inputs(), "recommend")

    async def search(self, text: str, limit: int) -> Scored:
        """Films whose titles match `text`, best first: status, results."""
        return await self._one({"title": text, "top_n": limit}, "search")

    async def film(self, film_id: int) -> Scored:
        """One film's details: status (ok or not_found), film."""
        return await self._one({"id": film_id}, "film")

    async def info(self) -> Scored:
        """What the served model says of itself: model name, build run, catalog size, genres, ranking weights."""
        return await self._one({}, "info")

    async def _one(self, row: dict[str, Any], mode: str) -> Scored:
        backend = self.backend
        record = await invoke_one(backend, row, mode)
        if backend.identity.version is None and not backend.pinned and self._refreshing is None and _due(backend):
            # Started before the scoring server (or the registry) was ready, or serving a build the registry does not
            # hold: learn the version in the background, now and then.
            self._refreshing = asyncio.create_task(self.refresh_identity())
            self._refreshing.add_done_callback(self._refreshed)
        return record, backend.identity

    def _refreshed(self, _: asyncio.Task[ModelIdentity]) -> None:
        self._refreshing = None

    async def ping(self, backend: Backend | None = None) -> bool:
        """Whether the scoring server (the champion's, or `backend`'s) answers /ping now."""
        try:
            status, _ = await (backend or self.backend).upstream.get(PING)
        except UpstreamError:
            return False
        return status == 200

    async def refresh_identity(self, backend: Backend | None = None) -> ModelIdentity:
        """Ask the served model (the champion's, or `backend`'s) who it is, then the registry which version that is;
        keeps the last answer on failure.

        A backend the supervisor started already knows its version: nothing to ask."""
        backend = backend or self.backend
        if backend.pinned:
            return backend.identity
        backend.asked_at = time.monotonic()
        try:
            info = await invoke_one(backend, {}, "info")
        except Exception as error:  # noqa: BLE001 - identity is best effort; requests are unaffected
            logger.warning("could not ask the scoring server which model it serves: %s", error)
            return backend.identity
        name, run_id = info.get("model_name"), info.get("build_run_id")
        if run_id != backend.identity.build_run_id or backend.identity.version is None:
            version = await anyio.to_thread.run_sync(self._registered_version, name, run_id)
            backend.identity = ModelIdentity(name, version, run_id, backend.identity.alias)
        return backend.identity

    def _pool(self, url: str) -> UpstreamPool:
        settings = self._settings
        return UpstreamPool(url, settings.max_connections, settings.connect_timeout_s, settings.timeout_s)

    def _registered_version(self, name: str | None, run_id: str | None) -> str | None:
        if not name or not run_id:
            return None
        try:
            versions = MlflowClient(self._settings.tracking_uri).search_model_versions(
                f"name='{name}' and run_id='{run_id}'"
            )
        except Exception as error:  # noqa: BLE001 - the registry being down must not break serving
            logger.warning("could not look up the served model's version: %s", error)
            return None
        return max((v.version for v in versions), key=int, default=None)


def _due(backend: Backend) -> bool:
    return backend.asked_at is None or time.monotonic() - backend.asked_at >= IDENTITY_RETRY_S


async def invoke_one(backend: Backend, row: dict[str, Any], mode: str) -> dict[str, Any]:
    """POST one query row to the backend's /invocations with param `mode`; the one record the model answers (asked
    for as JSON text, and parsed here, while the backend's model takes param `format`)."""
    as_text = backend.records_as_text
    params = {"mode": mode, **RECORDS_AS_TEXT} if as_text else {"mode": mode}
    predictions = await invoke(backend.upstream, {"inputs": [row], "params": params})
    record = predictions[0] if isinstance(predictions, list) and len(predictions) == 1 else None
    if isinstance(record, str):
        try:
            record = orjson.loads(record)
        except orjson.JSONDecodeError:
            record = None
    elif isinstance(record, dict) and as_text:
        logger.info("the served model answers records as objects (it predates param `format`): not asking again")
        backend.records_as_text = False
    if not isinstance(record, dict):
        logger.error("scoring server answered an unexpected shape: %.500s", predictions)
        raise ScoringFailed()
    return record


async def invoke(upstream: UpstreamPool, payload: dict[str, Any]) -> Any:
    """POST `payload` to /invocations; the `predictions`, or the GatewayError for what went wrong."""
    try:
        status, body = await upstream.post(INVOCATIONS, orjson.dumps(payload))
    except UpstreamUnavailable as error:
        raise ScoringUnavailable() from error
    except UpstreamTimeout as error:
        raise ScoringTimeout() from error
    except UpstreamDropped as error:
        logger.error("scoring server answered something that is not HTTP: %s", error)
        raise ScoringFailed() from error
    if status != 200:
        logger.error("scoring server answered %d: %s", status, body[:5000].decode(errors="replace"))
        raise ScoringFailed()
    try:
        return orjson.loads(body)["predictions"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as error:
        logger.error("scoring server answered unreadable JSON: %.500s", body.decode(errors="replace"))
        raise ScoringFailed() from error
