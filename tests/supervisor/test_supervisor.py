"""The supervisor's decisions, with the registry, the processes and the gateway replaced by stand-ins: what it
switches the router to, when it stops the old server, what it does with a version that cannot serve, a dead
server, and the standby."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import supervisor.supervisor as supervisor_module
from supervisor.server import LaunchFailed, ScoringServer
from supervisor.settings import SupervisorSettings
from supervisor.supervisor import Supervisor
from tests.supervisor.fakes import FakeRouter, fake_server

NAME = "movie-recommender"


class Stage:
    """A supervisor with its registry aliases in `aliases` and launches made up: each version in `broken` fails,
    every other one starts on its own port."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        settings = SupervisorSettings(
            model_name=NAME, poll_s=0.02, drain_timeout_s=5, state_dir=str(tmp_path), tracking_uri="http://127.0.0.1:9"
        )
        self.supervisor = Supervisor(settings)
        self.router = FakeRouter()
        self.router.route.release.set()  # nothing is in flight on the gateway's placeholder
        self.aliases: dict[str, str] = {}
        self.broken: set[str] = set()
        self.launched: list[str] = []
        self.servers: list[ScoringServer] = []
        monkeypatch.setattr(supervisor_module, "CHECK_S", 0.01)
        monkeypatch.setattr(self.supervisor, "_aliases", lambda: dict(self.aliases))
        monkeypatch.setattr(self.supervisor, "_launch", self._launch)
        monkeypatch.setattr(supervisor_module, "warm_up", self._warm_up)

    async def _launch(self, version: str, local: Path | None = None, on_spawn: object = None) -> ScoringServer:
        self.launched.append(version)
        await asyncio.sleep(0.01)
        if version in self.broken:
            raise LaunchFailed(f"RuntimeError: version {version} cannot load")
        server = fake_server(version, port=6000 + len(self.servers), build_run_id=f"run-{version}")
        self.servers.append(server)
        return server

    async def _warm_up(self, http: object, server: ScoringServer, deadline: float) -> str | None:
        return server.build_run_id

    def play(self, scenario: Callable[[Supervisor], Awaitable[None]]) -> None:
        async def run() -> None:
            await self.supervisor.start(self.router)
            try:
                await scenario(self.supervisor)
            finally:
                await self.supervisor.stop()

        asyncio.run(run())


async def until(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stage:
    return Stage(tmp_path, monkeypatch)


def test_the_router_gets_each_version_the_alias_points_at_and_the_old_server_stops_once_drained(stage: Stage) -> None:
    stage.router.hold = True

    async def scenario(supervisor: Supervisor) -> None:
        stage.aliases["champion"] = "1"
        await until(lambda: supervisor.state.serving == "1")
        assert stage.router.switches == [("http://127.0.0.1:6000", NAME, "1", "run-1")]
        first, first_route = stage.servers[0], stage.router.route
        stage.aliases["champion"] = "2"
        await until(lambda: supervisor.state.serving == "2")
        assert stage.router.switches[-1] == ("http://127.0.0.1:6001", NAME, "2", "run-2")
        await asyncio.sleep(0.1)
        assert not first.child.stopped  # type: ignore[attr-defined]  # requests are still in flight there
        first_route.release.set()
        await until(lambda: first.child.stopped)  # type: ignore[attr-defined]
        assert first_route.drained and supervisor.state.switches == 2
        stage.router.route.release.set()

    stage.play(scenario)


def test_a_version_that_cannot_start_is_shown_and_the_old_one_keeps_serving(stage: Stage) -> None:
    stage.broken.add("2")

    async def scenario(supervisor: Supervisor) -> None:
        stage.aliases["champion"] = "1"
        await until(lambda: supervisor.state.serving == "1")
        stage.aliases["champion"] = "2"
        await until(lambda: "2" in supervisor.state.failed)
        assert "version 2 cannot load" in supervisor.state.failed["2"] and supervisor.state.troubled
        await asyncio.sleep(0.1)
        assert stage.launched == ["1", "2"]  # not tried again while the alias stays there
        assert [switch[2] for switch in stage.router.switches] == ["1"] and supervisor.state.serving == "1"
        stage.aliases["champion"] = "1"  # rolled back
        await until(lambda: not supervisor.state.troubled)
        stage.broken.clear()
        stage.aliases["champion"] = "2"  # pointed at again: another chance
        await until(lambda: supervisor.state.serving == "2")

    stage.play(scenario)


def test_a_dead_server_is_started_again_from_its_local_copy(stage: Stage) -> None:
    async def scenario(supervisor: Supervisor) -> None:
        stage.aliases["champion"] = "1"
        await until(lambda: supervisor.state.serving == "1")
        stage.servers[0].child.alive = False  # type: ignore[misc]
        await until(lambda: supervisor.state.restarts == 1 and len(stage.servers) == 2)
        await until(lambda: supervisor.current is stage.servers[1])
        assert [switch[2] for switch in stage.router.switches] == ["1", "1"]
        assert supervisor.state.switches == 1  # a restart is not an alias move

    stage.play(scenario)


def test_the_standby_is_kept_warm_and_a_promotion_to_it_starts_nothing(stage: Stage) -> None:
    async def scenario(supervisor: Supervisor) -> None:
        stage.aliases.update(champion="1", challenger="2")
        await until(lambda: supervisor.state.public()["standby"]["ready"])
        assert stage.launched == ["1", "2"] and len(stage.router.switches) == 1
        stage.aliases["champion"] = "2"
        await until(lambda: supervisor.state.serving == "2")
        assert stage.launched == ["1", "2"]  # the warm standby took the traffic
        assert supervisor.state.public()["standby"]["version"] is None  # it is the one served now

    stage.play(scenario)


def test_stopping_stops_every_server_started(stage: Stage) -> None:
    async def scenario(supervisor: Supervisor) -> None:
        stage.aliases.update(champion="1", challenger="2")
        await until(lambda: supervisor.state.public()["standby"]["ready"])

    stage.play(scenario)
    assert [server.child.stopped for server in stage.servers] == [True, True]  # type: ignore[attr-defined]
