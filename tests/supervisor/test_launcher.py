"""Getting a warm server of a version, with its processes made up and its answers made up in process
(httpx.MockTransport): taking over a server an earlier supervisor left, the build check, another port when the
picked one turns out taken."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

import supervisor.launcher as launcher_module
from supervisor.launcher import PORT_TRIES, Launcher
from supervisor.server import LaunchFailed, Leftover, ScoringServer
from supervisor.settings import SupervisorSettings
from tests.supervisor.fakes import PORT_IN_USE, FakeChild, fake_server


class Servers:
    """Scoring servers answering on made-up ports: `/ping`, then `info` naming the build in `builds[port]`, and an
    empty title search; a port not in `builds` refuses connections."""

    def __init__(self) -> None:
        self.builds: dict[int, str] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        build = self.builds.get(request.url.port or 0)
        if build is None:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/ping":
            return httpx.Response(200, text="\n")
        mode = json.loads(request.content)["params"]["mode"]
        record: dict[str, Any] = {"status": "ok", "results": []}
        if mode == "info":
            record = {"status": "ok", "n_films": 3, "build_run_id": build}
        return httpx.Response(200, json={"predictions": [record]})


class Spawns:
    """Stands in for `server.spawn`: each call takes the next made-up server; the ports asked for are recorded."""

    def __init__(self, *servers: ScoringServer) -> None:
        self.servers: list[ScoringServer] = list(servers)
        self.ports: list[int] = []

    def __call__(self, settings: object, state_dir: Path, version: str, local: Path, port: int) -> ScoringServer:
        self.ports.append(port)
        server = self.servers.pop(0)
        server.version, server.model_dir = version, local
        return server


@pytest.fixture
def servers() -> Servers:
    return Servers()


def launch(
    tmp_path: Path, servers: Servers, leftovers: list[Leftover], build_run_id: str | None = "run-1"
) -> ScoringServer:
    settings = SupervisorSettings(state_dir=str(tmp_path), serve_port=5001, serve_start_timeout_s=5)
    launcher = Launcher(settings, tmp_path, MlflowClient("http://127.0.0.1:9"), in_use=lambda: ())
    launcher.leftovers = leftovers

    async def scenario() -> ScoringServer:
        async with httpx.AsyncClient(transport=httpx.MockTransport(servers.handle)) as http:
            launcher.http = http
            return await launcher.launch("1", tmp_path / "copy", build_run_id)

    try:
        return asyncio.run(scenario())
    finally:
        assert launcher.leftovers == []  # decided at the first launch, whatever its outcome


def leftover(port: int, alive: bool = True) -> Leftover:
    return Leftover(f"http://127.0.0.1:{port}", FakeChild(f"scoring-{port}", alive=alive))  # type: ignore[arg-type]


def test_a_leftover_serving_the_build_is_taken_over_and_the_others_are_stopped(
    tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawns = Spawns()
    monkeypatch.setattr(launcher_module, "spawn", spawns)
    servers.builds.update({7001: "run-other", 7002: "run-1", 7004: "run-1"})
    wrong, dead, right, second = leftover(7001), leftover(7003, alive=False), leftover(7002), leftover(7004)

    server = launch(tmp_path, servers, [wrong, dead, right, second])

    assert server.url == "http://127.0.0.1:7002" and server.child is right.child
    assert (server.version, server.model_dir, server.build_run_id) == ("1", tmp_path / "copy", "run-1")
    assert right.child.tied and not right.child.stopped  # type: ignore[attr-defined]  # stopped if the gateway dies
    assert [lo.child.stopped for lo in (wrong, dead, second)] == [True, True, True]  # type: ignore[attr-defined]
    assert spawns.ports == []  # nothing started


def test_without_a_build_to_compare_with_no_leftover_is_taken_over(
    tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launcher_module, "spawn", Spawns(fake_server("?", 7100)))
    servers.builds.update({7002: "run-1", 7100: "run-1"})
    left = leftover(7002)

    server = launch(tmp_path, servers, [left], build_run_id=None)

    assert server.url == "http://127.0.0.1:7100" and left.child.stopped  # type: ignore[attr-defined]


def test_a_new_server_whose_model_names_another_build_is_refused_and_stopped(
    tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawns = Spawns(fake_server("?", 7100))
    monkeypatch.setattr(launcher_module, "spawn", spawns)
    servers.builds[7100] = "run-other"

    with pytest.raises(LaunchFailed, match="names build run 'run-other'; version 1 is build run 'run-1'"):
        launch(tmp_path, servers, [])
    assert spawns.ports == [5001]  # the version's own fault: no other port tried


def test_a_server_that_loses_its_port_is_started_again_on_another(
    tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost = fake_server("?", 7100)
    lost.child.alive, lost.child.returncode, lost.child.log_text = False, 1, PORT_IN_USE  # type: ignore[misc, attr-defined]
    spawns = Spawns(lost, fake_server("?", 7101))
    monkeypatch.setattr(launcher_module, "spawn", spawns)
    servers.builds[7101] = "run-1"

    server = launch(tmp_path, servers, [])

    assert server.url == "http://127.0.0.1:7101" and lost.child.stopped  # type: ignore[attr-defined]
    assert spawns.ports == [5001, 0]  # the preferred port, then one the OS picks


def test_the_port_is_tried_a_bounded_number_of_times(
    tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost = [fake_server("?", 7100 + n) for n in range(PORT_TRIES + 1)]
    for server in lost:
        server.child.alive, server.child.log_text = False, PORT_IN_USE  # type: ignore[misc, attr-defined]
    spawns = Spawns(*lost)
    monkeypatch.setattr(launcher_module, "spawn", spawns)

    with pytest.raises(LaunchFailed, match=f"was taken before the server could bind it \\({PORT_TRIES} ports tried\\)"):
        launch(tmp_path, servers, [])
    assert len(spawns.ports) == PORT_TRIES
