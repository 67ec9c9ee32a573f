"""The supervisor's loop: follow the alias, keep the standby warm, switch traffic, retire and restart servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import httpx
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from supervisor import champion, copies, processes
from supervisor.champion import Champion
from supervisor.launcher import Launcher
from supervisor.router import Route, Router
from supervisor.server import PID_PATTERN, DownloadFailed, LaunchFailed, ScoringServer, find_leftovers, warm_up
from supervisor.settings import SupervisorSettings
from supervisor.state import SupervisorState

logger = logging.getLogger(__name__)

CHECK_S = 0.5  # how often the serving process is checked for life
MAX_RESTART_BACKOFF_S = 60.0
ALIAS_MOVED, RESTART, REMEMBERED = "alias moved", "restart", "registry away at start: the last champion served"


class Supervisor:
    """Follows `settings.model_alias` of `settings.model_name` and keeps its router pointed at a warm server."""

    def __init__(self, settings: SupervisorSettings) -> None:
        self.settings = settings
        self.router: Router | None = None
        self.state = SupervisorState(
            alias=f"{settings.model_name}@{settings.model_alias}",
            standby_alias=f"{settings.model_name}@{settings.standby_alias}" if settings.standby_alias else None,
        )
        self.current: ScoringServer | None = None
        self.standby: ScoringServer | None = None  # warm, no traffic
        self._standby_task: asyncio.Task[None] | None = None
        self._standby_starting: ScoringServer | None = None  # its process, once spawned, until it is warm
        self._state_dir = Path(settings.state_dir).resolve()
        self._registry = MlflowClient(settings.tracking_uri)
        self._launcher = Launcher(settings, self._state_dir, self._registry, in_use=self._copies_in_use)
        self._remembered: Champion | None = None  # served when the registry cannot be asked at start
        self._http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._restart_after = 0.0
        self._restart_backoff = 1.0

    @property
    def first_url(self) -> str:
        """Where the router sends requests before the first switch: port 0, which refuses every connection. Not the
        serve port: whatever else answers there is not a server of the model."""
        return f"http://{self.settings.serve_host}:0"

    async def start(self, router: Router) -> None:
        """Find what a previous supervisor left running (the first launch takes over a server of what it needs and
        stops the others) and the champion it served, then follow the alias in a background task, switching `router`
        to each server it makes ready."""
        self.router = router
        # a progress bar per download is noise in logs (ours, and the scoring servers' that inherit this)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self._state_dir.mkdir(parents=True, exist_ok=True)
        leftovers = await anyio.to_thread.run_sync(find_leftovers, self.settings.serve_host, self._state_dir)
        if leftovers:
            logger.warning("found %d scoring server(s) left by a previous supervisor", len(leftovers))
        self._launcher.leftovers = leftovers
        self._remembered = champion.recall(self._state_dir, self.settings.model_name)
        self._http = self._launcher.http = httpx.AsyncClient()
        self._task = asyncio.create_task(self._run(), name="supervisor")

    async def stop(self) -> None:
        """Stop following the alias and stop every scoring server started."""
        if self._task is not None:
            await _cancel(self._task)
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._standby_task is not None:  # a standby still starting: `_launch` stops its process when cancelled
            await _cancel(self._standby_task)
        for server in (self.current, self.standby):
            if server is not None:
                await anyio.to_thread.run_sync(server.stop)
        self.current = self.standby = None
        if self._http is not None:
            await self._http.aclose()
        # a launch cancelled while its process was being spawned may have left one: its PID file names it
        await anyio.to_thread.run_sync(self._stop_leftovers)

    async def _run(self) -> None:
        next_poll = 0.0
        while True:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + self.settings.poll_s
                aliases = await self._read_aliases()
                if aliases is not None:
                    await self._follow_alias(aliases.get(self.settings.model_alias))
                    await self._follow_standby(aliases.get(self.settings.standby_alias))
                elif self.current is None:
                    await self._serve_remembered()
            if self.current is not None and not self.current.alive and now >= self._restart_after:
                await self._restart()
            await asyncio.sleep(CHECK_S)

    async def _read_aliases(self) -> dict[str, str] | None:
        """Where each alias of the model points (one registry call); None while the registry cannot be asked."""
        try:
            aliases = await anyio.to_thread.run_sync(self._aliases)
        except Exception as error:  # noqa: BLE001 - the registry being away must not stop serving
            if self.state.registry_error is None:
                logger.warning("cannot ask the registry where %s points: %s", self.state.alias, error)
            self.state.registry_error = f"{type(error).__name__}: {str(error)[:300]}"
            return None
        self.state.registry_error = None
        return aliases

    def _aliases(self) -> dict[str, str]:
        try:
            model = self._registry.get_registered_model(self.settings.model_name)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return {}  # not registered (yet): nothing to serve
            raise
        return {alias: str(version) for alias, version in model.aliases.items()}

    async def _follow_alias(self, target: str | None) -> None:
        if target != self.state.target:
            logger.info("%s points at version %s", self.state.alias, target)
            self.state.target = target
            # The alias moved: versions that failed before get another chance when pointed at again.
            self.state.failed.pop(target or "", None)
        if target is None or target in self.state.failed:
            return
        if self.current is None or target != self.current.version:
            await self._switch(target, reason=ALIAS_MOVED)
        elif self.state.stale:
            await self._confirm(self.current)

    async def _serve_remembered(self) -> None:
        """The registry cannot be asked and nothing is served: serve the last champion served from its local copy
        (tried once per start), until the registry answers."""
        remembered, self._remembered = self._remembered, None
        if remembered is None:
            return
        local = self._launcher.models / remembered.folder
        if not copies.complete(local):
            logger.error("the last champion, version %s, has no local copy left at %s", remembered.version, local)
            return
        logger.warning("serving version %s, the last champion served, from %s", remembered.version, local)
        await self._switch(remembered.version, REMEMBERED, local, remembered.build_run_id)

    async def _confirm(self, stale: ScoringServer) -> None:
        """The registry answers again and the alias points at the version served from memory: keep it when the
        registry names the same build, else start the version afresh from the registry's files."""
        try:
            build_run_id = await anyio.to_thread.run_sync(self._launcher.build_run, stale.version)
        except Exception as error:  # noqa: BLE001 - asked again at the next poll
            logger.warning("cannot ask the registry which build version %s is: %s", stale.version, error)
            return
        if build_run_id is None or build_run_id == stale.build_run_id:
            self.state.stale = False
            logger.info("the registry answers: version %s, served from its local copy, is the alias's", stale.version)
        else:
            await self._switch(stale.version, reason=ALIAS_MOVED)

    async def _follow_standby(self, target: str | None) -> None:
        """Keep the standby alias's version (`target`) warm, unless it is the one served (or failed to serve)."""
        if not self.settings.standby_alias:
            return
        if target != self.state.standby_target:
            self.state.standby_target = target
            self.state.standby_failed.pop(target or "", None)  # moved: a version that failed gets another chance
        wanted = target
        if wanted is not None and (
            wanted in self.state.failed
            or wanted in self.state.standby_failed
            or (self.current is not None and wanted == self.current.version)
        ):
            wanted = None
        if self.standby is not None and not self.standby.alive:
            logger.error("the standby server of version %s exited: starting it again", self.standby.version)
            self._drop_standby()
        if wanted == self.state.standby_version:
            return
        self._drop_standby()
        starting = self._standby_task is not None and not self._standby_task.done()
        if wanted is not None and not starting:  # (one still starting is being stopped; next poll then)
            self.state.standby_version = wanted
            self._standby_task = asyncio.create_task(self._prepare_standby(wanted), name="standby")

    async def _prepare_standby(self, version: str) -> None:
        logger.info("starting a standby scoring server for version %s (%s)", version, self.state.standby_alias)
        try:
            server = await self._launch(version, on_spawn=self._standby_spawned)
        except Exception as error:  # noqa: BLE001 - a standby that cannot start is shown, never fatal
            if self.state.standby_version != version:  # `_drop_standby` stopped it
                logger.info("stopped the standby server of version %s while it started: no longer wanted", version)
                return
            logger.error("the standby server of version %s did not start: %s", version, error)
            self.state.standby_version = None
            if not isinstance(error, DownloadFailed):  # a download is tried again at the next poll
                self.state.standby_failed[version] = str(error)[:1000]
            return
        finally:
            self._standby_starting = None
        if self.state.standby_version != version:  # no longer wanted (or taken over) while it warmed up
            await anyio.to_thread.run_sync(server.stop)
            return
        self.standby = server
        self.state.standby_url = server.url
        assert self.router is not None, "start() first"
        self.router.offer_challenger(server.url, self.settings.model_name, version, server.build_run_id)
        logger.info("standby: version %s is warm at %s (canary and shadow requests may go there)", version, server.url)

    def _standby_spawned(self, server: ScoringServer) -> None:
        self._standby_starting = server

    def _drop_standby(self) -> None:
        """Forget the standby: a warm one is stopped in the background; one still starting is killed now, so that
        its start-up (seconds of CPU) does not slow the server a promotion is waiting for."""
        self.state.standby_version = self.state.standby_url = None
        standby, self.standby = self.standby, None
        if standby is not None:  # canary and shadow requests already sent there finish first
            self._in_background(self._retire(standby, self._withdraw_challenger()))
        starting = self._standby_starting
        if starting is not None and self._standby_task is not None and not self._standby_task.done():
            self._standby_starting = None
            self._in_background(anyio.to_thread.run_sync(starting.stop))  # its `_launch` then fails and cleans up

    async def _take_standby(self, version: str) -> ScoringServer | None:
        """The warm standby of `version` (waiting for one still starting), or None."""
        if self.state.standby_version != version:
            return None
        if self._standby_task is not None and not self._standby_task.done():
            await asyncio.shield(self._standby_task)  # it is half-way there: cheaper than starting afresh
        standby = self.standby
        if standby is None or standby.version != version or not standby.alive:
            return None
        self.standby = None
        self.state.standby_version = self.state.standby_url = None
        # it serves the followed alias from now on: no longer as the challenger (its process keeps running)
        self._in_background(self._withdraw_challenger().drain(self.settings.drain_timeout_s))
        try:  # warm when it was started; make sure it still answers
            await warm_up(self._client(), standby, self._deadline())
        except LaunchFailed as error:
            logger.error("the standby server of version %s no longer answers (%s): starting afresh", version, error)
            self._in_background(anyio.to_thread.run_sync(standby.stop))
            return None
        return standby

    async def _restart(self) -> None:
        dead = self.current
        assert dead is not None
        logger.error(
            "scoring server for version %s (pid %d) exited with %s; starting it again. Its log ends:\n%s",
            dead.version, dead.child.pid, dead.child.returncode, dead.child.tail(20),
        )  # fmt: skip
        self.state.restarts += 1
        await anyio.to_thread.run_sync(dead.stop)  # whatever is left of its group, and its PID file
        # the files it served are still here: a restart needs neither the registry nor the artifact store
        local = dead.model_dir if copies.complete(dead.model_dir) else None
        if await self._switch(dead.version, RESTART, local, dead.build_run_id):
            self._restart_backoff = 1.0
        else:  # try again later, waiting longer each time; the alias may also move meanwhile
            self._restart_after = time.monotonic() + self._restart_backoff
            self._restart_backoff = min(self._restart_backoff * 2, MAX_RESTART_BACKOFF_S)

    async def _switch(
        self, version: str, reason: str, local: Path | None = None, build_run_id: str | None = None
    ) -> bool:
        """Start `version` (from `local` files of build `build_run_id` when given), warm it up and send new requests
        to it; False (old server kept) when it fails."""
        began = time.monotonic()
        self.state.switching_to = version
        try:
            standby = await self._take_standby(version) if reason == ALIAS_MOVED else None
            if standby is None:
                logger.info("starting a scoring server for version %s (%s)", version, reason)
            fresh = standby or await self._launch(version, local, build_run_id)
        except LaunchFailed as error:
            self._failed(version, reason, error)
            return False
        finally:
            self.state.switching_to = None
        previous = self.current
        assert self.router is not None, "start() first"
        previous_route = self.router.switch(fresh.url, self.settings.model_name, version, fresh.build_run_id)
        self.current = fresh
        self.state.serving, self.state.serving_url, self.state.serving_since = version, fresh.url, time.time()
        if reason != RESTART:  # a restart serves what was served, from memory or not
            self.state.stale = reason == REMEMBERED
        await anyio.to_thread.run_sync(self._remember, fresh)
        if reason == ALIAS_MOVED:
            self.state.switches += 1
            self.state.last_switch_s = round(time.monotonic() - began, 2)
        logger.info(
            "now serving version %s at %s (%.1f s after %s%s)",
            version, fresh.url, time.monotonic() - began, reason, ", warm standby" if standby else "",
        )  # fmt: skip
        self._in_background(self._retire(previous, previous_route))
        return True

    def _remember(self, served: ScoringServer) -> None:
        name = self.settings.model_name
        try:
            champion.remember(
                self._state_dir, Champion(name, served.version, served.model_dir.name, served.build_run_id)
            )
        except OSError as error:  # serving goes on; only a start without the registry would miss it
            logger.error("cannot remember version %s as the last champion served: %s", served.version, error)

    def _failed(self, version: str, reason: str, error: LaunchFailed) -> None:
        failure = f"version {version} ({reason}): {str(error)[:1000]}"
        if failure != self.state.last_failure:  # a download retried every poll is logged once
            logger.error("version %s was not switched to (%s): %s", version, reason, error)
        self.state.last_failure = failure
        if reason == ALIAS_MOVED and not isinstance(error, DownloadFailed):
            self.state.failed[version] = str(error)[:1000]

    async def _retire(self, old: ScoringServer | None, route: Route) -> None:
        """Let the requests sent through `route` (the one in use before the switch) finish, then stop `old`."""
        drained = await route.drain(self.settings.drain_timeout_s)
        if old is None:
            return
        if not drained:
            logger.warning(
                "version %s still had requests in flight after %.0f s", old.version, self.settings.drain_timeout_s
            )
        await anyio.to_thread.run_sync(old.stop)
        logger.info("stopped the scoring server of version %s (%s)", old.version, old.url)

    async def _launch(
        self,
        version: str,
        local: Path | None = None,
        build_run_id: str | None = None,
        on_spawn: Callable[[ScoringServer], None] | None = None,
    ) -> ScoringServer:
        """A warm scoring server of `version` (supervisor/launcher.py); LaunchFailed when there is none."""
        return await self._launcher.launch(version, local, build_run_id, on_spawn)

    def _withdraw_challenger(self) -> Route:
        """Stop sending canary and shadow requests to the standby; the route they took (a finished one when none)."""
        assert self.router is not None, "start() first"
        return self.router.withdraw_challenger() or _NO_ROUTE

    def _copies_in_use(self) -> set[str]:
        return {server.model_dir.name for server in (self.current, self.standby) if server is not None}

    def _stop_leftovers(self) -> list[int]:
        return processes.stop_leftovers(self._state_dir, PID_PATTERN, b"mlflow")

    def _client(self) -> httpx.AsyncClient:
        assert self._http is not None, "start() first"
        return self._http

    def _deadline(self) -> float:
        return time.monotonic() + self.settings.serve_start_timeout_s

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class _NoRoute:
    """The route of a challenger that was never offered: nothing in flight."""

    async def drain(self, timeout_s: float) -> bool:
        return True


_NO_ROUTE = _NoRoute()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
