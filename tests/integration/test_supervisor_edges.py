"""`python -m gateway serve` at the edges of its life, with real processes: started while the registry is away, killed
outright, started again next to scoring servers an earlier gateway left running, and a stranger answering on the
port picked for its scoring server.

The registry here is a tracking server of this module's own, stopped and started again by the tests. Its versions
are a small model honouring the recommender's contract (`info` names the run that built it, a title search finds
nothing) so that each `mlflow models serve` starts in seconds; two builds of it, by two runs, are versions `one` and
`two`.
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from supervisor.processes import Child, group_alive
from supervisor.processes import start as start_child
from tests import processes

pytestmark = pytest.mark.integration

NAME = "edge-recommender"
START_S = 120.0  # a gateway's start, or a switch: a small model's `mlflow models serve` on a busy machine
TINY = """
from typing import Any

import mlflow
import pydantic


class Row(pydantic.BaseModel):
    title: str | None = None
    top_n: int | None = None


class Tiny(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.build_run_id = context.model_config["build_run_id"]

    def predict(self, context, model_input: list[Row], params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if (params or {}).get("mode") == "info":
            return [{"status": "ok", "model_name": "edge-recommender", "build_run_id": self.build_run_id, "n_films": 1}]
        return [{"status": "ok", "results": []} for _ in model_input]


mlflow.models.set_model(Tiny())
"""
# Answers like a scoring server of another build, on PORT, from the moment LOG (the log of the server the supervisor
# starts there) appears: the port was free when picked, and is taken before that server can bind it.
STRANGER = """
import http.server, json, sys, time
from pathlib import Path

port, log = int(sys.argv[1]), Path(sys.argv[2])
while not log.exists():
    time.sleep(0.005)
INFO = {"status": "ok", "n_films": 1, "build_run_id": "a-stranger", "results": []}

class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer({} if self.path == "/ping" else None)

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.answer({"predictions": [INFO]})

    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

http.server.ThreadingHTTPServer(("127.0.0.1", port), Answer).serve_forever()
"""


@dataclass
class Registry:
    """A tracking server of the module's own, on a port that stays its own while it is stopped."""

    log_dir: Path
    port: int = field(default_factory=processes.free_port)
    process: Child | None = None
    versions: dict[str, str] = field(default_factory=dict)  # label -> registered version

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process, _ = processes.mlflow_server(self.log_dir, self.log_dir, port=self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process = None

    def point(self, label: str) -> None:
        MlflowClient(self.uri).set_registered_model_alias(NAME, "champion", self.versions[label])


@dataclass
class Gateway:
    process: Child
    url: str
    state_dir: Path

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def supervisor(self) -> dict:
        return self.health()["supervisor"]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ready", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    def search(self) -> httpx.Response:
        return httpx.get(f"{self.url}/movies/search", params={"q": "Heat"}, timeout=10)

    def scoring_groups(self) -> dict[int, int]:
        """Port -> process group of each scoring server its PID files name."""
        return {int(f.stem.split("-")[1]): int(f.read_text()) for f in self.state_dir.glob("scoring-*.pid")}


def register_tiny(client: MlflowClient, experiment_id: str, folder: Path) -> str:
    """A build of the small model by a run of its own, registered as a new version of NAME."""
    code = folder / "tiny.py"
    code.write_text(textwrap.dedent(TINY))
    run = client.create_run(experiment_id)
    with tempfile.TemporaryDirectory() as saved:
        mlflow.pyfunc.save_model(
            f"{saved}/model",
            python_model=str(code),
            model_config={"build_run_id": run.info.run_id},
            input_example=([{"title": "Heat", "top_n": 1}], {"mode": "search", "format": "records"}),
            pip_requirements=["mlflow"],
        )
        client.log_artifacts(run.info.run_id, f"{saved}/model", "model")
    client.set_terminated(run.info.run_id)
    return client.create_model_version(NAME, f"{run.info.artifact_uri}/model", run.info.run_id).version


def start_gateway(registry: Registry, state_dir: Path, log_dir: Path, serve_port: int = 0) -> Gateway:
    process, url = processes.gateway(
        log_dir,
        "http://127.0.0.1:1",  # unused when supervising
        registry.uri,
        "serve",
        request_log="false",
        model_name=NAME,
        standby_alias="",
        poll_s="0.5",
        serve_start_timeout_s=str(START_S),
        serve_port=str(serve_port),
        state_dir=str(state_dir),
    )
    return Gateway(process, url, state_dir)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = Registry(tmp_path_factory.mktemp("edge-registry"))
    registry.start()
    try:
        client = MlflowClient(registry.uri)
        client.create_registered_model(NAME)
        experiment = client.create_experiment("edge-builds")
        folder = tmp_path_factory.mktemp("edge-models")
        registry.versions = {label: register_tiny(client, experiment, folder) for label in ("one", "two")}
        registry.point("one")
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    """The gateways a test starts, stopped at its end whatever happened."""
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.process.stop(timeout_s=60)


def test_without_the_registry_the_last_champion_is_served_until_the_registry_answers(
    registry: Registry, tmp_path: Path, gateways: list[Gateway]
) -> None:
    state_dir = tmp_path / "state"
    first = start_gateway(registry, state_dir, tmp_path)
    gateways.append(first)
    assert processes.wait_until(first.ready, START_S), first.process.tail()
    first.process.stop(timeout_s=60)  # it served `one`, the champion then
    registry.point("two")  # promoted while no gateway ran
    registry.stop()
    try:
        gateway = start_gateway(registry, state_dir, tmp_path)
        gateways.append(gateway)
        assert processes.wait_until(gateway.ready, START_S), gateway.process.tail()
        health = gateway.health()
        assert health["status"] == "degraded" and health["model"]["version"] == registry.versions["one"]
        supervisor = health["supervisor"]
        assert supervisor["stale"] and supervisor["serving_version"] == registry.versions["one"]
        assert supervisor["registry_error"] and supervisor["target_version"] is None
        response = gateway.search()
        assert response.status_code == 200 and response.headers["x-model-version"] == registry.versions["one"]
    finally:
        registry.start()
    two = registry.versions["two"]
    assert processes.wait_until(lambda: gateway.supervisor()["serving_version"] == two, START_S), gateway.supervisor()
    health = gateway.health()
    assert not health["supervisor"]["stale"] and health["status"] == "ok", health
    assert gateway.search().headers["x-model-version"] == two
    registry.point("one")


def test_a_gateway_killed_outright_leaves_no_scoring_server(
    registry: Registry, tmp_path: Path, gateways: list[Gateway]
) -> None:
    gateway = start_gateway(registry, tmp_path / "state", tmp_path)
    gateways.append(gateway)
    assert processes.wait_until(gateway.ready, START_S), gateway.process.tail()
    [(port, group)] = gateway.scoring_groups().items()
    gateway.process.kill()
    assert processes.wait_until(lambda: not group_alive(group), 20), "the scoring server outlived its gateway"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/ping", timeout=5)


def test_a_restarted_gateway_takes_over_a_leftover_of_the_champion_and_stops_one_of_another_build(
    registry: Registry, tmp_path: Path, gateways: list[Gateway]
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    # as a gateway from before tethered servers leaves them when killed: running, named by their PID files
    right, wrong = (leftover(registry, state_dir, label) for label in ("one", "two"))
    try:
        gateway = start_gateway(registry, state_dir, tmp_path)
        gateways.append(gateway)
        assert processes.wait_until(gateway.ready, START_S), gateway.process.tail()
        supervisor = gateway.supervisor()
        assert supervisor["serving_version"] == registry.versions["one"]
        assert supervisor["serving_url"] == f"http://127.0.0.1:{right[0]}"  # the leftover: no second start
        assert processes.wait_until(lambda: not group_alive(wrong[1].pid), 20)
        assert gateway.scoring_groups() == {right[0]: right[1].pid}
        assert gateway.search().headers["x-model-version"] == registry.versions["one"]
        gateway.process.kill()  # taken over, it ends with the gateway that took it
        assert processes.wait_until(lambda: not group_alive(right[1].pid), 20), (
            "the server taken over outlived its gateway"
        )
    finally:
        for _, child in (right, wrong):
            child.kill()


def test_a_stranger_answering_on_the_picked_port_is_not_taken_for_the_scoring_server(
    registry: Registry, tmp_path: Path, gateways: list[Gateway]
) -> None:
    state_dir, port = tmp_path / "state", processes.free_port()
    state_dir.mkdir()
    command = [sys.executable, "-c", STRANGER, str(port), str(state_dir / f"scoring-{port}.log")]
    stranger = processes.start("stranger", command, tmp_path)
    try:
        gateway = start_gateway(registry, state_dir, tmp_path, serve_port=port)
        gateways.append(gateway)
        assert processes.wait_until(gateway.ready, START_S), gateway.process.tail()
        assert httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 200  # the stranger holds the port
        supervisor = gateway.supervisor()
        assert supervisor["serving_url"] != f"http://127.0.0.1:{port}", supervisor
        assert supervisor["serving_version"] == registry.versions["one"]
        assert port not in gateway.scoring_groups()  # the server that lost the port was stopped
        response = gateway.search()
        assert response.status_code == 200 and response.headers["x-model-version"] == registry.versions["one"]
        assert stranger.alive  # not the supervisor's to stop
    finally:
        stranger.stop()


def leftover(registry: Registry, state_dir: Path, label: str) -> tuple[int, Child]:
    """`mlflow models serve` of version `label`, started with no tether, its PID file and log in `state_dir`."""
    port = processes.free_port()
    command = [
        str(processes.BIN / "mlflow"), "models", "serve", "-m", f"models:/{NAME}/{registry.versions[label]}",
        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    name = f"scoring-{port}"
    env = processes.base_env(MLFLOW_TRACKING_URI=registry.uri)
    child = start_child(name, command, state_dir / f"{name}.log", pid_file=state_dir / f"{name}.pid", env=env)
    processes.wait_http(child, f"http://127.0.0.1:{port}/ping", timeout=START_S)
    return port, child
