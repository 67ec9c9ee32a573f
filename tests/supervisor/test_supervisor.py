"""The supervisor's decisions, with the registry, the processes and the gateway replaced by stand-ins: what it
switches the router to, when it stops the old server, what it does with a version that cannot serve, a dead
server, the standby, and a registry that cannot be asked at start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import supervisor.supervisor as supervisor_module
from supervisor.champion import Champion, recall, remember
from supervisor.server import LaunchFailed, ScoringServer
from supervisor.settings import SupervisorSettings
from supervisor.supervisor import Supervisor
from tests.supervisor.fakes import FakeRouter, fake_server

NAME = "movie-recommender"


class Stage:
    """A supervisor with its registry aliases in `aliases` (the registry away while `registry_up` is False; version
    V built by run `run-V` unless `builds` says otherwise) and launches made up: each version in `broken` fails,
    every other one starts on its own port, its model naming the build it was launched for."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        settings = SupervisorSettings(
            model_name=NAME, poll_s=0.02, drain_timeout_s=5, state_dir=str(tmp_path), tracking_uri="http://127.0.0.1:9"
        )
        self.supervisor = Supervisor(settings)
        self.router = FakeRouter()
        self.router.route.release.set()  # nothing is in flight on the gateway's placeholder
        self.aliases: dict[str, str] = {}
        self.registry_up = True
        self.builds: dict[str, str] = {}
        self.broken: set[str] = set()
        self.launched: list[str] = []
        self.sources: list[tuple[Path | None, str | None]] = []  # (local files, build) of each launch
        self.servers: list[ScoringServer] = []
        monkeypatch.setattr(supervisor_module, "CHECK_S", 0.01)
        monkeypatch.setattr(self.supervisor, "_aliases", self._aliases)
        monkeypatch.setattr(self.supervisor._launcher, "build_run", self._build_run)
        monkeypatch.setattr(self.supervisor, "_launch", self._launch)
        monkeypatch.setattr(supervisor_module, "warm_up", self._warm_up)

    def _aliases(self) -> dict[str, str]:
        self._ask_registry()
        return dict(self.aliases)

    def _build_run(self, version: str) -> str:
        self._ask_registry()
        return self.builds.get(version, f"run-{version}")

    def _ask_registry(self) -> None:
        if not self.registry_up:
            raise ConnectionError("the registry is away")

    async def _launch(
        self, version: str, local: Path | None = None, build_run_id: str | None = None, on_spawn: object = None
    ) -> ScoringServer:
        self.launched.append(version)
        self.sources.append((local, build_run_id))
        await asyncio.sleep(0.01)
        if version in self.broken:
            raise LaunchFailed(f"RuntimeError: version {version} cannot load")
        build = build_run_id or self._build_run(version)
        server = fake_server(version, 6000 + len(self.servers), build, local or Path(f"/copies/{NAME}-{version}"))
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


def remembered_copy(state_dir: Path, version: str, build_run_id: str) -> Path:
    """What a previous supervisor leaves after serving `version`: its local copy, and it remembered as champion."""
    copy = state_dir / "models" / f"{NAME}-{version}-abc"
    copy.mkdir(parents=True)
    (copy / "MLmodel").write_text("flavors: {}\n")
    remember(state_dir, Champion(NAME, version, copy.name, build_run_id))
    return copy


def test_each_version_switched_to_is_remembered_as_champion(stage: Stage, tmp_path: Path) -> None:
    async def scenario(supervisor: Supervisor) -> None:
        # remembered right after the switch, off the event loop: waited for
        stage.aliases["champion"] = "1"
        await until(lambda: recall(tmp_path, NAME) == Champion(NAME, "1", f"{NAME}-1", "run-1"))
        assert supervisor.state.serving == "1"
        stage.aliases["champion"] = "2"
        await until(lambda: recall(tmp_path, NAME) == Champion(NAME, "2", f"{NAME}-2", "run-2"))
        assert supervisor.state.serving == "2"
        assert not supervisor.state.stale

    stage.play(scenario)


def test_without_the_registry_at_start_the_last_champion_is_served_from_its_copy(stage: Stage, tmp_path: Path) -> None:
    copy = remembered_copy(tmp_path, "1", "run-1")
    stage.registry_up = False

    async def scenario(supervisor: Supervisor) -> None:
        await until(lambda: supervisor.state.serving == "1")
        assert stage.sources == [(copy, "run-1")]  # its local files, checked against the build remembered
        assert [switch[2:] for switch in stage.router.switches] == [("1", "run-1")]
        state = supervisor.state
        assert state.stale and state.public()["stale"] and state.troubled and state.registry_error is not None
        await asyncio.sleep(0.1)
        assert stage.launched == ["1"]  # tried once, not at every poll
        stage.aliases["champion"] = "2"  # moved while the registry was away
        stage.registry_up = True
        await until(lambda: supervisor.state.serving == "2")
        assert not supervisor.state.stale and not supervisor.state.troubled
        await until(lambda: stage.servers[0].child.stopped)  # type: ignore[attr-defined]

    stage.play(scenario)


def test_the_registry_back_on_the_version_served_from_memory_ends_stale_without_a_restart(
    stage: Stage, tmp_path: Path
) -> None:
    remembered_copy(tmp_path, "1", "run-1")
    stage.registry_up = False
    stage.aliases["champion"] = "1"

    async def scenario(supervisor: Supervisor) -> None:
        await until(lambda: supervisor.state.stale)
        stage.registry_up = True
        await until(lambda: not supervisor.state.stale)
        assert stage.launched == ["1"] and supervisor.current is stage.servers[0]
        assert not supervisor.state.troubled

    stage.play(scenario)


def test_a_version_number_registered_again_with_another_build_is_started_afresh(stage: Stage, tmp_path: Path) -> None:
    remembered_copy(tmp_path, "1", "run-1")
    stage.registry_up = False
    stage.aliases["champion"] = "1"
    stage.builds["1"] = "run-1-again"  # the model was deleted and registered again since

    async def scenario(supervisor: Supervisor) -> None:
        await until(lambda: supervisor.state.stale)
        stage.registry_up = True
        await until(lambda: not supervisor.state.stale)
        assert stage.launched == ["1", "1"] and stage.sources[1] == (None, None)  # the registry's files this time
        assert supervisor.current is stage.servers[1] and stage.servers[1].build_run_id == "run-1-again"

    stage.play(scenario)


@pytest.mark.parametrize("left", ["nothing", "no copy", "another model"])
def test_without_the_registry_nothing_is_served_unless_a_copy_of_this_model_is_remembered(
    stage: Stage, tmp_path: Path, left: str
) -> None:
    if left == "no copy":
        remember(tmp_path, Champion(NAME, "1", f"{NAME}-1-abc", "run-1"))
    elif left == "another model":
        remembered_copy(tmp_path, "1", "run-1")
        remember(tmp_path, Champion("another-model", "1", f"{NAME}-1-abc", "run-1"))
    stage.registry_up = False

    async def scenario(supervisor: Supervisor) -> None:
        await until(lambda: supervisor.state.registry_error is not None)
        await asyncio.sleep(0.1)
        assert stage.launched == [] and supervisor.state.serving is None and not supervisor.state.stale

    stage.play(scenario)
