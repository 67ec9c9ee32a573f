"""A warm scoring server of one version, however it comes: the version's files (a local copy, downloaded once) and the
build run the registry names for it; then a server an earlier supervisor left running that serves that build, or
else a new `mlflow models serve` of the copy, started again on another port when its port turns out taken."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from pathlib import Path

import anyio
import httpx
from mlflow.tracking import MlflowClient

from supervisor import copies
from supervisor.server import (
    DownloadFailed,
    LaunchFailed,
    Leftover,
    PortTaken,
    ScoringServer,
    check_identity,
    spawn,
    wait_ready,
    warm_up,
)
from supervisor.settings import SupervisorSettings

logger = logging.getLogger(__name__)

PORT_TRIES = 3  # a port taken between its pick and the server's bind is rare: three times in a row is something else
ADOPT_PING_S = 5.0  # a server left running answers at once, or it is not up


class Launcher:
    """Starts, or takes over, the supervisor's scoring servers. `leftovers` are the servers an earlier supervisor
    left running, until the first launch takes one over and stops the others."""

    def __init__(
        self,
        settings: SupervisorSettings,
        state_dir: Path,
        registry: MlflowClient,
        in_use: Callable[[], Collection[str]],
    ) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.models = state_dir / "models"
        self.registry = registry
        self.in_use = in_use  # the copies' folder names the servers running now serve: never pruned
        self.leftovers: list[Leftover] = []
        self.http: httpx.AsyncClient | None = None

    async def launch(
        self,
        version: str,
        local: Path | None = None,
        build_run_id: str | None = None,
        on_spawn: Callable[[ScoringServer], None] | None = None,
    ) -> ScoringServer:
        """A warm scoring server of `version` serving the files in `local`, whose model names build run
        `build_run_id` (both asked of the registry when `local` is None; None: not checked): a leftover serving that
        build when there is one, else a new server; LaunchFailed (its process stopped) when none gets ready."""
        deadline = time.monotonic() + self.settings.serve_start_timeout_s
        if local is None:
            local, build_run_id = await self.fetch(version)
        adopted = await self._adopt(version, local, build_run_id, deadline)
        if adopted is not None:
            return adopted
        taken: PortTaken | None = None
        for port in [self.settings.serve_port] + [0] * (PORT_TRIES - 1):  # 0: one the OS picks
            try:
                return await self._start(version, local, build_run_id, port, on_spawn, deadline)
            except PortTaken as error:
                logger.warning("the server of version %s lost its port (%s): trying another one", version, error)
                taken = error
        raise LaunchFailed(f"{taken} ({PORT_TRIES} ports tried)")

    async def fetch(self, version: str) -> tuple[Path, str | None]:
        """The local copy of `version` (downloaded unless already here) and the build run the registry names for it;
        DownloadFailed while the registry or the artifact store cannot be reached."""
        name = self.settings.model_name
        try:
            local = await anyio.to_thread.run_sync(copies.local_copy, self.registry, self.models, name, version)
            build_run_id = await anyio.to_thread.run_sync(self.build_run, version)
        except copies.NotAModel as error:
            raise LaunchFailed(str(error)) from error
        except Exception as error:  # the registry or the artifact store is away: not the version's fault
            raise DownloadFailed(f"cannot download version {version}: {type(error).__name__}: {error}") from error
        copies.prune_copies(self.models, {local.name, *self.in_use()})
        return local, build_run_id

    def build_run(self, version: str) -> str | None:
        """The run that built `version`, as the registry names it (None when it names none)."""
        return self.registry.get_model_version(self.settings.model_name, version).run_id or None

    async def _adopt(
        self, version: str, local: Path, build_run_id: str | None, deadline: float
    ) -> ScoringServer | None:
        """The first leftover that is up and serves build `build_run_id`, taken over as `version`; the others are
        stopped (all of them when there is no build to compare with)."""
        leftovers, self.leftovers = self.leftovers, []
        adopted = None
        for leftover in leftovers:
            server = leftover.serving(version, local)
            if adopted is None and build_run_id is not None and await self._serves(server, build_run_id, deadline):
                await anyio.to_thread.run_sync(leftover.child.tie)
                logger.warning("took over the scoring server left running at %s: version %s", server.url, version)
                adopted = server
            else:
                await anyio.to_thread.run_sync(server.stop)
                logger.warning("stopped the scoring server left running at %s (pid %d)", server.url, server.child.pid)
        return adopted

    async def _serves(self, server: ScoringServer, build_run_id: str, deadline: float) -> bool:
        """Whether `server` answers from its own port, warm and correct, with a model of build `build_run_id`."""
        try:
            await wait_ready(self._client(), server, min(deadline, time.monotonic() + ADOPT_PING_S))
            server.build_run_id = await warm_up(self._client(), server, deadline)
            check_identity(server, build_run_id)
        except LaunchFailed as error:
            logger.info("the scoring server left running at %s is not taken over: %s", server.url, error)
            return False
        return True

    async def _start(
        self,
        version: str,
        local: Path,
        build_run_id: str | None,
        port: int,
        on_spawn: Callable[[ScoringServer], None] | None,
        deadline: float,
    ) -> ScoringServer:
        server = await anyio.to_thread.run_sync(spawn, self.settings, self.state_dir, version, local, port)
        if on_spawn is not None:
            on_spawn(server)
        try:
            await wait_ready(self._client(), server, deadline)
            server.build_run_id = await warm_up(self._client(), server, deadline)
            check_identity(server, build_run_id)
        except BaseException:
            await anyio.to_thread.run_sync(server.stop)
            raise
        return server

    def _client(self) -> httpx.AsyncClient:
        assert self.http is not None, "the supervisor's start() first"
        return self.http
