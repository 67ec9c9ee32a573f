"""The request log writer against real MLflow stores: contents, outage, recovery, overflow."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from gateway.request_log import RequestLogger, RequestRecord
from tests import processes


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sqlite store keeps run artifacts (the grouped runs' tables) under ./mlruns: not in the checkout."""
    monkeypatch.chdir(tmp_path)


def record(title: str, n: int = 5, status: str = "ok") -> RequestRecord:
    return RequestRecord(title, 5, None, status, 200, n, 3.5, "7")


def wait_for(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def runs_by_title(uri: str, experiment: str) -> dict[str, object]:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    return {run.data.params["title"]: run for run in client.search_runs([found.experiment_id], max_results=1000)}


def test_each_record_becomes_one_finished_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'log.db'}"
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
        "enabled": True, "mode": "per_request", "runs": 3, "queued": 0, "written": 3, "lost": 0,
        "tracking_reachable": True, "last_error": None,
    }  # fmt: skip


def test_outage_keeps_what_fits_and_writes_it_when_tracking_returns(tmp_path: Path) -> None:
    port = processes.free_port()
    uri = f"http://127.0.0.1:{port}"
    log = RequestLogger(uri, "outage", queue_size=2, timeout_s=1, backoff_s=0.2)
    log.start()
    log.submit(record("first"))
    assert wait_for(lambda: log.tracking_reachable is False and log._queue.qsize() == 0)  # first is being retried
    for title in ["second", "third", "fourth", "fifth"]:
        log.submit(record(title))
    assert log.lost == 2 and log.pending == 3  # 1 retrying + 2 queued; the overflow is counted, not hidden
    server, _ = processes.mlflow_server(tmp_path, tmp_path, port=port)
    try:
        assert wait_for(lambda: log.written == 3, timeout=90)
        log.stop()
        assert set(runs_by_title(uri, "outage")) == {"first", "second", "third"}
        assert (log.lost, log.tracking_reachable) == (2, True)
    finally:
        server.stop()


def test_stop_while_tracking_is_down_counts_the_queue_as_lost() -> None:
    log = RequestLogger(f"http://127.0.0.1:{processes.free_port()}", "gone", timeout_s=1, backoff_s=0.1)
    log.start()
    for title in ["a", "b", "c"]:
        log.submit(record(title))
    assert wait_for(lambda: log.tracking_reachable is False)
    log.stop(drain_timeout_s=0.5)
    assert (log.written, log.lost, log.pending) == (0, 3, 0)


def test_disabled_logger_accepts_and_drops_nothing() -> None:
    log = RequestLogger("sqlite:///unused.db", "off", enabled=False)
    log.start()
    log.submit(record("x"))
    assert log.health()["queued"] == 0 and log.lost == 0


def test_grouped_mode_writes_queued_requests_as_one_run_with_a_table(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'log.db'}"
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
    # MLflow knows the artifacts as tables, as if `log_table` had written them: `load_table` reads all three
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # load_table searches runs through the fluent API
    try:
        table = client.load_table(client.get_experiment_by_name("grouped").experiment_id, "requests.json")
    finally:
        mlflow.set_tracking_uri(previous)
    assert sorted(table["title"]) == sorted(titles)


def test_a_grouped_runs_table_reads_back_as_log_table_writes_it(tmp_path: Path) -> None:
    """The table is written without pandas; MLflow must read it exactly as one `MlflowClient.log_table` wrote."""
    uri = f"sqlite:///{tmp_path / 'log.db'}"
    records = [
        RequestRecord("Heat", 5, 1995, "ok", 200, 5, 3.14159, "7", extra={"n_liked": "2"}),
        RequestRecord("", 10, None, "unknown_title", 404, 0, 1.5, None),
        RequestRecord("Amélie", 3, None, "ok", 200, 3, 2.0, "7", extra={"query": 'a "quoted" word'}),
    ]
    log = RequestLogger(uri, "tables", mode="grouped")
    for item in records:
        log.submit(item)
    log.start()
    log.stop()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tables").experiment_id
    reference = client.create_run(experiment).info.run_id
    columns = {
        "started_ms": [r.started_ms for r in records],
        "title": [r.title for r in records],
        "top_n": [r.top_n for r in records],
        "year": [r.year for r in records],
        "status": [r.status for r in records],
        "http_status": [r.http_status for r in records],
        "n_returned": [r.n_returned for r in records],
        "latency_ms": [round(r.latency_ms, 3) for r in records],
        "model_version": [r.model_version for r in records],
        "params": [json.dumps(r.extra, separators=(",", ":")) if r.extra else "" for r in records],
    }
    client.log_table(reference, data=pd.DataFrame(columns), artifact_file="requests.json")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        tables = client.load_table(experiment, "requests.json", extra_columns=["run_id"])
    finally:
        mlflow.set_tracking_uri(previous)
    ours = tables[tables["run_id"] != reference].drop(columns="run_id").reset_index(drop=True)
    theirs = tables[tables["run_id"] == reference].drop(columns="run_id").reset_index(drop=True)
    assert len(ours) == 3
    pd.testing.assert_frame_equal(ours, theirs)


def test_auto_mode_groups_only_when_behind(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'log.db'}"
    log = RequestLogger(uri, "auto", mode="auto", auto_backlog=20)
    log.start()
    log.submit(record("alone"))
    assert wait_for(lambda: log.written == 1)
    for i in range(300):
        log.submit(record(f"burst {i}"))
    log.stop()
    assert log.written == 301 and log.lost == 0
    assert 2 <= log.runs < 150  # the first alone, the burst mostly grouped


def test_grouped_runs_are_written_at_most_once_per_flush_interval(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'log.db'}"
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


def test_stop_writes_what_is_queued_without_waiting_for_the_interval(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'log.db'}"
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


def test_auto_mode_goes_back_to_a_run_per_request_when_requests_slow_down(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'log.db'}"
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
