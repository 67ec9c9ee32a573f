"""The request log writer against real MLflow stores: contents, outage, recovery, overflow."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from gateway.app import configure_mlflow_client
from gateway.request_log import RequestLogger, RequestRecord
from gateway.request_runs import REQUESTS_TABLE
from gateway.settings import Settings
from tests import processes


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One sqlite store for the module (each test writes to an experiment of its own); the store keeps run
    artifacts (the grouped runs' tables) under ./mlruns, so the tests run in its folder, not in the checkout."""
    folder = tmp_path_factory.mktemp("request-log")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        yield f"sqlite:///{folder / 'log.db'}"


@pytest.fixture(autouse=True)
def mlflow_client_of_the_gateway() -> Iterator[None]:
    """MLflow's client as the gateway process has it (no retries of its own), with a 1 s timeout per call; the
    environment is put back afterwards."""
    before = dict(os.environ)
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        os.environ.pop(name, None)
    configure_mlflow_client(Settings(tracking_timeout_s=1))
    yield
    os.environ.clear()
    os.environ.update(before)


def record(title: str, n: int = 5, status: str = "ok") -> RequestRecord:
    return RequestRecord(title, 5, None, status, 200, n, 3.5, "7")


def wait_for(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def load_tables(uri: str, experiment: str) -> pd.DataFrame:
    """Every `requests.json` table of the experiment's runs, read by MLflow's own `load_table`."""
    client = MlflowClient(uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # load_table searches runs through the fluent API
    try:
        return client.load_table(client.get_experiment_by_name(experiment).experiment_id, REQUESTS_TABLE)
    finally:
        mlflow.set_tracking_uri(previous)


def runs_by_title(uri: str, experiment: str) -> dict[str, object]:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    return {run.data.params["title"]: run for run in client.search_runs([found.experiment_id], max_results=1000)}


def test_each_record_becomes_one_finished_run(uri: str) -> None:
    log = RequestLogger(uri, "requests")
    log.start()
    for title in ["Alien", "Heat", "Up"]:
        log.submit(record(title, n=3))
    log.stop()
    runs = runs_by_title(uri, "requests")
    assert set(runs) == {"Alien", "Heat", "Up"}
    run = runs["Heat"]
    assert run.info.status == "FINISHED"
    assert run.data.params == {"title": "Heat", "top_n": "5"}
    assert run.data.metrics == {"n_returned": 3.0, "latency_ms": 3.5}
    assert run.data.tags["status"] == "ok" and run.data.tags["model_version"] == "7"
    assert log.health() | {"last_error": None} == {
        "enabled": True, "mode": "per_request", "runs": 3, "queued": 0, "written": 3, "rejected": 0, "lost": 0,
        "tracking_reachable": True, "last_error": None,
    }  # fmt: skip


def test_stop_while_tracking_is_down_counts_the_queue_as_lost() -> None:
    log = RequestLogger(f"http://127.0.0.1:{processes.free_port()}", "gone", timeout_s=1, backoff_s=0.1)
    log.start()
    for title in ["a", "b", "c"]:
        log.submit(record(title))
    assert wait_for(lambda: log.tracking_reachable is False)
    time.sleep(1.0)  # several tries, 0.1 s apart and doubling: no answer is no refusal, so nothing is rejected
    assert (log.rejected, log.pending) == (0, 3)
    log.stop(drain_timeout_s=0.5)
    assert (log.written, log.rejected, log.lost, log.pending) == (0, 0, 3, 0)


def test_disabled_logger_accepts_and_drops_nothing() -> None:
    log = RequestLogger("sqlite:///unused.db", "off", enabled=False)
    log.start()
    log.submit(record("x"))
    assert log.health()["queued"] == 0 and log.lost == 0


def test_grouped_mode_writes_queued_requests_as_one_run_with_a_table(uri: str, tmp_path: Path) -> None:
    log = RequestLogger(uri, "grouped", mode="grouped", group_size=400)
    for i in range(1000):  # queued before the writer starts: it finds a backlog
        log.submit(record(f"film {i}", n=i % 7, status="ok" if i % 10 else "unknown_title"))
    log.start()
    log.stop()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("grouped").experiment_id])
    assert sorted(int(run.data.params["n_requests"]) for run in runs) == [200, 400, 400]
    assert sum(run.data.metrics["n_errors"] for run in runs) == 100
    titles = []
    for run in runs:
        table = json.loads(Path(client.download_artifacts(run.info.run_id, "requests.json", str(tmp_path))).read_text())
        titles += [row[table["columns"].index("title")] for row in table["data"]]
    assert sorted(titles) == sorted(f"film {i}" for i in range(1000))
    assert (log.written, log.runs, log.lost) == (1000, 3, 0)
    assert sorted(load_tables(uri, "grouped")["title"]) == sorted(titles)  # MLflow knows them as tables


def test_a_table_write_that_failed_part_way_is_redone_in_a_fresh_run(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`log_table` appends to a table already there: a retry after the upload went through must not double it."""
    real, calls = MlflowClient.log_table, []

    def upload_then_fail(self: MlflowClient, run_id: str, *args: object, **kwargs: object) -> None:
        calls.append(run_id)
        real(self, run_id, *args, **kwargs)
        if len(calls) == 1:
            raise ConnectionError("tracking went away after the upload")

    monkeypatch.setattr(MlflowClient, "log_table", upload_then_fail)
    log = RequestLogger(uri, "retried", mode="grouped", backoff_s=0.05)
    for i in range(5):
        log.submit(record(f"film {i}"))
    log.start()
    assert wait_for(lambda: log.written == 5)
    log.stop()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("retried").experiment_id])
    assert len(calls) == 2 and [run.info.run_id for run in runs] == [calls[1]]  # the first run was deleted
    assert (log.written, log.runs, log.lost) == (5, 1, 0) and runs[0].info.status == "FINISHED"
    assert len(load_tables(uri, "retried")) == 5


def test_auto_mode_groups_only_when_behind(uri: str) -> None:
    log = RequestLogger(uri, "auto", mode="auto", auto_backlog=20)
    log.start()
    log.submit(record("alone"))
    assert wait_for(lambda: log.written == 1)
    for i in range(300):
        log.submit(record(f"burst {i}"))
    log.stop()
    assert log.written == 301 and log.lost == 0
    assert 2 <= log.runs < 150  # the first alone, the burst mostly grouped


def test_grouped_runs_are_written_at_most_once_per_flush_interval(uri: str) -> None:
    log = RequestLogger(uri, "steady", mode="grouped", flush_interval_s=0.5)
    log.start()
    started = time.monotonic()
    for i in range(150):  # a steady 75 requests a second for two seconds
        log.submit(record(f"steady {i}"))
        time.sleep(max(0.0, started + (i + 1) / 75 - time.monotonic()))
    elapsed = time.monotonic() - started
    assert wait_for(lambda: log.written == 150)
    assert log.runs <= elapsed / 0.5 + 2  # without the interval: a run per write's worth of requests, dozens
    log.stop()
    assert log.lost == 0


def test_stop_writes_what_is_queued_without_waiting_for_the_interval(uri: str) -> None:
    log = RequestLogger(uri, "stop", mode="grouped", flush_interval_s=60)
    log.start()
    log.submit(record("first"))
    assert wait_for(lambda: log.written == 1)  # the first group goes at once; the next would wait a minute
    for i in range(5):
        log.submit(record(f"late {i}"))
    started = time.monotonic()
    log.stop()
    assert time.monotonic() - started < 15
    assert (log.written, log.runs, log.lost) == (6, 2, 0)


def test_auto_mode_goes_back_to_a_run_per_request_when_requests_slow_down(uri: str) -> None:
    log = RequestLogger(uri, "auto-back", mode="auto", auto_backlog=20, flush_interval_s=0.2)
    for i in range(300):  # a backlog when the writer starts: it groups
        log.submit(record(f"burst {i}"))
    log.start()
    assert wait_for(lambda: log.written == 300)
    assert log.runs < 20
    for title in ["after 1", "after 2"]:
        log.submit(record(title))
        assert wait_for(lambda: log.pending == 0)
    log.stop()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("auto-back").experiment_id], max_results=1000)
    assert [run.data.params.get("title") for run in runs].count("after 2") == 1  # a run of its own, not a row


def test_an_experiment_deleted_while_logging_is_restored_and_the_log_goes_on(uri: str) -> None:
    log = RequestLogger(uri, "deleted")
    log.start()
    log.submit(record("before"))
    assert wait_for(lambda: log.written == 1)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("deleted").experiment_id
    client.delete_experiment(experiment)  # what the MLflow UI's delete does: the experiment and its runs
    for title in ["after 1", "after 2"]:
        log.submit(record(title))
    assert wait_for(lambda: log.written + log.rejected == 3, timeout=30)
    log.stop()
    assert client.get_experiment(experiment).lifecycle_stage == "active"
    assert set(runs_by_title(uri, "deleted")) == {"before", "after 1", "after 2"}  # the first came back with it
    assert (log.written, log.rejected, log.lost, log.pending) == (3, 0, 0, 0)


def test_a_record_tracking_always_refuses_is_rejected_and_counted_and_the_next_is_written(uri: str) -> None:
    log = RequestLogger(uri, "refused")
    bad = record("bad")
    bad.extra = {"what?": "1"}  # MLflow refuses this param name: INVALID_PARAMETER_VALUE, every time
    log.submit(bad)
    log.submit(record("good"))
    log.start()
    assert wait_for(lambda: log.written + log.rejected == 2, timeout=30)
    log.stop()
    health = log.health()
    assert (health["written"], health["rejected"], health["lost"], health["queued"]) == (1, 1, 0, 0)
    assert "INVALID_PARAMETER_VALUE" in health["last_error"] and health["tracking_reachable"] is True
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("refused").experiment_id])
    # the rejected record's run, created before its params were refused, does not show as running for ever
    assert sorted((run.data.params.get("title", ""), run.info.status) for run in runs) == [
        ("", "FAILED"), ("good", "FINISHED")
    ]  # fmt: skip
