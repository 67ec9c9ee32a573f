"""`python -m gateway serve` with real processes: the supervisor follows the registry alias under load, keeps the
challenger warm and promotes it at once, refuses versions that cannot start or warm up, restarts a killed scoring
server, and a gateway restart corrupts nothing (test_supervisor_edges.py: the registry away at start, leftovers, a
stranger on the port).

The registered model here is its own (`SUPERVISED`), with versions made from the session's built model, so moving
its alias never disturbs the other tests' servers.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from gateway.request_runs import GROUPED
from supervisor.processes import group_alive
from tests import processes
from tests.conftest import BuiltModel
from tests.integration.conftest import request_log_records, requests_table
from tests.integration.traffic import Traffic

pytestmark = pytest.mark.integration

SUPERVISED = "supervised-recommender"
EXPERIMENT = "supervised-requests"
SWITCH_LIMIT_S = 30.0
WARM_SWITCH_LIMIT_S = 5.0  # a poll (0.5 s here) and a re-check of a server that is up already
WHY = {"unloadable": "RuntimeError: this version cannot load", "failing": "this version fails every prediction"}

# Versions that must not go live: one cannot load, one loads but every prediction fails.
UNLOADABLE = """
import mlflow

class Unloadable(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        raise RuntimeError("this version cannot load")

    def predict(self, context, model_input, params=None):
        return model_input

mlflow.models.set_model(Unloadable())
"""
FAILING = """
import mlflow

class Failing(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("this version fails every prediction")

mlflow.models.set_model(Failing())
"""


@dataclass
class Supervised:
    url: str
    process: processes.Process
    state_dir: Path
    client: MlflowClient
    versions: dict[str, str] = field(default_factory=dict)  # label -> registered version

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def point(self, label: str, alias: str = "champion") -> float:
        self.client.set_registered_model_alias(SUPERVISED, alias, self.versions[label])
        return time.monotonic()

    def standby(self) -> dict:
        return self.health()["supervisor"]["standby"]

    def other(self) -> str:
        """The label of the good version not being served."""
        return "two" if self.health()["supervisor"]["serving_version"] == self.versions["one"] else "one"

    def scoring_groups(self) -> list[int]:
        return [int(path.read_text()) for path in self.state_dir.glob("scoring-*.pid")]


def register_code_model(tracking_uri: str, code: str, directory: Path, name: str) -> str:
    """Log `code` as a models-from-code pyfunc and register it; returns the version."""
    path = directory / f"{name.lower()}.py"
    path.write_text(textwrap.dedent(code))
    environment = dict(os.environ)  # mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID: later `mlflow run`s break
    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment("supervisor-test-models")
        with mlflow.start_run(run_name=name):
            info = mlflow.pyfunc.log_model(name="model", python_model=str(path), pip_requirements=["mlflow"])
        return mlflow.register_model(info.model_uri, SUPERVISED).version
    finally:
        os.environ.clear()
        os.environ.update(environment)


def start_gateway(built_model: BuiltModel, state_dir: Path, log_dir: Path) -> tuple[processes.Process, str]:
    return processes.gateway(
        log_dir,
        "http://127.0.0.1:1",  # unused when supervising
        built_model.tracking_uri,
        "serve",
        experiment=EXPERIMENT,
        model_name=SUPERVISED,
        poll_s="0.5",
        serve_start_timeout_s="150",
        serve_port="0",
        state_dir=str(state_dir),
    )


@pytest.fixture(scope="module")
def supervised(
    built_model: BuiltModel, work_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervised]:
    client = MlflowClient(built_model.tracking_uri)
    source = client.get_model_version(built_model.name, built_model.version).source
    mlflow.set_tracking_uri(built_model.tracking_uri)
    versions = {}
    for label in ("one", "two"):  # the same logged model registered twice: two versions to move between
        versions[label] = mlflow.register_model(source, SUPERVISED).version
    models = tmp_path_factory.mktemp("code-models")
    versions["unloadable"] = register_code_model(built_model.tracking_uri, UNLOADABLE, models, "Unloadable")
    versions["failing"] = register_code_model(built_model.tracking_uri, FAILING, models, "Failing")
    client.set_registered_model_alias(SUPERVISED, "champion", versions["one"])
    state_dir = tmp_path_factory.mktemp("supervisor-state")
    process, url = start_gateway(built_model, state_dir, work_dir)
    stack = Supervised(url, process, state_dir, client, versions)
    try:
        assert processes.wait_until(lambda: httpx.get(f"{url}/ready").status_code == 200, 300), process.tail()
        yield stack
    finally:
        stack.process.stop()


def test_serves_the_alias_and_names_the_version(supervised: Supervised) -> None:
    response = httpx.post(f"{supervised.url}/movies/recommendations/", json={"title": "The Matrix", "top_n": 3})
    assert response.status_code == 200
    version = supervised.versions["one"]
    assert response.headers["x-model-version"] == version and response.json()["model"]["version"] == version
    health = supervised.health()
    assert health["status"] == "ok" and health["model"]["version"] == version
    assert health["supervisor"]["serving_version"] == health["supervisor"]["target_version"] == version
    assert len(supervised.scoring_groups()) == 1


def test_promotion_under_load_fails_no_request(supervised: Supervised) -> None:
    old_group = supervised.scoring_groups()
    new = supervised.versions["two"]
    with Traffic(supervised.url, concurrency=4).in_thread() as load:
        time.sleep(1)
        moved = supervised.point("two")
        assert processes.wait_until(lambda: new in load.first_from, SWITCH_LIMIT_S + 5)
        time.sleep(1)
    switch_s = load.first_from[new] - moved
    assert load.statuses() == Counter({200: load.sent}), load.answers
    assert switch_s <= SWITCH_LIMIT_S, f"switched after {switch_s:.1f} s"
    assert {version for _, version in load.answers} == {supervised.versions["one"], new}
    # the old server drained and stopped: only the new one is left
    assert processes.wait_until(
        lambda: supervised.scoring_groups() != old_group and len(supervised.scoring_groups()) == 1, 30
    )
    assert not any(group_alive(group) for group in old_group)
    print(f"\npromotion: {load.sent} requests, 0 failed, switched in {switch_s:.1f} s")


def test_the_challenger_is_kept_warm_and_promoted_at_once(supervised: Supervised) -> None:
    label = supervised.other()
    new = supervised.versions[label]
    supervised.point(label, alias="challenger")
    try:
        assert processes.wait_until(
            lambda: supervised.standby()["ready"] and supervised.standby()["version"] == new, 180
        ), supervised.standby()
        assert len(supervised.scoring_groups()) == 2  # the serving server and the warm one
        with Traffic(supervised.url, concurrency=4).in_thread() as load:
            time.sleep(1)
            moved = supervised.point(label)
            assert processes.wait_until(lambda: new in load.first_from, SWITCH_LIMIT_S)
            time.sleep(1)
        switch_s = load.first_from[new] - moved
        assert load.statuses() == Counter({200: load.sent}), load.answers
        assert switch_s <= WARM_SWITCH_LIMIT_S, f"switched to the warm standby after {switch_s:.1f} s"
        # the challenger is now the one served: no standby; the old server drained and stopped
        assert supervised.standby()["version"] is None and supervised.standby()["target_version"] == new
        assert processes.wait_until(lambda: len(supervised.scoring_groups()) == 1, 30)
        print(f"\nwarm promotion: {load.sent} requests, 0 failed, switched in {switch_s:.1f} s")
    finally:
        supervised.client.delete_registered_model_alias(SUPERVISED, "challenger")


def test_a_standby_no_longer_wanted_is_stopped_while_it_starts(supervised: Supervised) -> None:
    # Its start-up costs seconds of CPU that a promotion may be waiting for: it must not run on to the end.
    serving = supervised.scoring_groups()
    supervised.point(supervised.other(), alias="challenger")
    try:
        starting = processes.wait_until(lambda: [pid for pid in supervised.scoring_groups() if pid not in serving], 60)
        assert starting and not supervised.standby()["ready"], supervised.standby()
    finally:
        supervised.client.delete_registered_model_alias(SUPERVISED, "challenger")
    assert processes.wait_until(lambda: supervised.scoring_groups() == serving, 3), supervised.scoring_groups()
    assert processes.wait_until(lambda: not group_alive(starting[0]), 3)
    standby = supervised.standby()
    assert standby["version"] is None and not standby["ready"] and standby["failed_versions"] == {}, standby


def test_a_challenger_that_cannot_start_is_shown_and_serving_goes_on(supervised: Supervised) -> None:
    serving = supervised.health()["supervisor"]["serving_version"]
    bad = supervised.versions["unloadable"]
    supervised.point("unloadable", alias="challenger")
    try:
        assert processes.wait_until(lambda: bad in supervised.standby()["failed_versions"], 180), supervised.standby()
        assert WHY["unloadable"] in supervised.standby()["failed_versions"][bad]
        health = supervised.health()
        assert health["status"] == "ok" and health["supervisor"]["serving_version"] == serving
        assert not supervised.standby()["ready"] and len(supervised.scoring_groups()) == 1  # it was stopped
    finally:
        supervised.client.delete_registered_model_alias(SUPERVISED, "challenger")
    assert processes.wait_until(lambda: supervised.standby()["target_version"] is None, 30)


@pytest.mark.parametrize("label", ["unloadable", "failing"])
def test_a_version_that_cannot_serve_is_not_switched_to(supervised: Supervised, label: str) -> None:
    serving = supervised.health()["supervisor"]["serving_version"]
    bad = supervised.versions[label]
    with Traffic(supervised.url, concurrency=2).in_thread() as load:
        supervised.point(label)
        failed = processes.wait_until(lambda: bad in supervised.health()["supervisor"]["failed_versions"], 180)
    assert failed, supervised.health()
    assert load.statuses() == Counter({200: load.sent}), load.answers
    assert {version for _, version in load.answers} == {serving}  # the old version answered throughout
    health = supervised.health()
    assert health["status"] == "degraded" and health["model"]["version"] == serving
    assert WHY[label] in health["supervisor"]["failed_versions"][bad]
    assert len(supervised.scoring_groups()) == 1  # the bad server was stopped
    # rolling back is moving the alias back: nothing to start, health is ok again
    supervised.client.set_registered_model_alias(SUPERVISED, "champion", serving)
    assert processes.wait_until(lambda: supervised.health()["status"] == "ok", 30), supervised.health()


def test_a_killed_scoring_server_is_restarted(supervised: Supervised) -> None:
    before = supervised.health()["supervisor"]
    [group] = supervised.scoring_groups()
    with Traffic(supervised.url, concurrency=4).in_thread() as load:
        time.sleep(1)
        os.killpg(group, signal.SIGKILL)
        killed = time.monotonic()
        assert processes.wait_until(lambda: load.last_503 is not None, 10)
        back = processes.wait_until(lambda: load.recovered, SWITCH_LIMIT_S + 5)
        time.sleep(1)
    assert back, f"no answer within {SWITCH_LIMIT_S} s of the kill: {load.answers}"
    statuses = load.statuses()
    assert set(statuses) <= {200, 503}, statuses  # 503 while it is down, nothing else
    assert back - killed <= SWITCH_LIMIT_S
    after = supervised.health()["supervisor"]
    assert after["restarts"] == before["restarts"] + 1 and after["serving_version"] == before["serving_version"]
    print(f"\nrestart: answering again {back - killed:.1f} s after the kill; {dict(statuses)}")


def test_a_gateway_restart_corrupts_nothing(supervised: Supervised, built_model: BuiltModel, work_dir: Path) -> None:
    registry_before = _registry(supervised.client)
    # graceful (SIGTERM): every answered request is in the request log; the scoring server is stopped with it
    sent = 0
    for _ in range(30):
        sent += httpx.post(f"{supervised.url}/movies/recommendations/", json={"title": "Fargo"}).status_code == 200
    [group] = supervised.scoring_groups()
    supervised.process.stop(timeout_s=60)
    assert not group_alive(group) and supervised.scoring_groups() == []
    assert request_log_records(supervised.client, EXPERIMENT, "Fargo") == sent == 30

    # killed outright (SIGKILL): its scoring server ends with it, and the next gateway finds nothing left running
    process, url = start_gateway(built_model, supervised.state_dir, work_dir)
    supervised.process, supervised.url = process, url
    assert processes.wait_until(lambda: httpx.get(f"{url}/ready").status_code == 200, 300), process.tail()
    [orphan] = supervised.scoring_groups()
    process.kill()
    assert processes.wait_until(lambda: not group_alive(orphan), 20), "the scoring server outlived its gateway"
    process, url = start_gateway(built_model, supervised.state_dir, work_dir)
    supervised.process, supervised.url = process, url
    assert processes.wait_until(lambda: httpx.get(f"{url}/ready").status_code == 200, 300), process.tail()
    assert _registry(supervised.client) == registry_before
    _assert_request_log_is_whole(supervised.client)


def _registry(client: MlflowClient) -> dict:
    model = client.get_registered_model(SUPERVISED)
    versions = client.search_model_versions(f"name='{SUPERVISED}'")
    return {"aliases": dict(model.aliases), "versions": sorted((v.version, v.source, v.status) for v in versions)}


def _assert_request_log_is_whole(client: MlflowClient) -> None:
    """Every request run finished, with its params and metrics; every grouped run's table matches its count."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    assert runs
    for run in runs:
        assert run.info.status == "FINISHED", run.info
        if run.data.tags.get("status") == GROUPED:
            table = requests_table(client, run.info.run_id)
            assert len(table) == int(run.data.params["n_requests"]) == run.data.metrics["n_requests"]
        else:
            assert {"title", "top_n"} <= set(run.data.params) and "n_returned" in run.data.metrics
