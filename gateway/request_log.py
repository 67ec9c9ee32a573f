"""The request log: one MLflow run per recommendation request, written off the request path.

`submit` only enqueues (never blocks, never raises). One background thread writes each record with `MlflowClient`
and explicit run ids (the fluent API would share one active run across concurrent requests). When tracking is down
the record is retried with backoff until it is written, so nothing is lost while the queue has room; a record that
finds the queue full, or is still queued when the gateway stops, is counted as lost, logged and shown in /health.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
MODE_PER_REQUEST, MODE_GROUPED, MODE_AUTO = "per_request", "grouped", "auto"
MODES = (MODE_PER_REQUEST, MODE_GROUPED, MODE_AUTO)
GROUPED = "grouped"  # the `status` tag of a run that holds many requests
REQUESTS_TABLE = "requests.json"  # a grouped run's records, one row per request
TABLE_TAG = json.dumps([{"path": REQUESTS_TABLE, "type": "table"}])  # the tag log_table gives a run
TABLE_COLUMNS = (
    "started_ms", "title", "top_n", "year", "status", "http_status", "n_returned", "latency_ms", "model_version",
    "params",
)  # fmt: skip


@dataclass
class RequestRecord:
    """What one request leaves in MLflow: params title/top_n(/year), metrics n_returned/latency_ms, tags."""

    title: str
    top_n: int
    year: int | None
    status: str
    http_status: int
    n_returned: int
    latency_ms: float
    model_version: str | None
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    extra: dict[str, str] = field(default_factory=dict)  # further params of richer requests (n_liked, query...)
    run_id: str | None = None  # set once the run exists: a retry continues it rather than making a second run
    stage: int = 0  # the next step to do: create, log, finish

    @property
    def size(self) -> int:
        return 1


@dataclass
class RecordGroup:
    """Records written together as one run (grouped mode)."""

    records: list[RequestRecord]
    run_id: str | None = None
    artifact_uri: str | None = None
    stage: int = 0

    @property
    def size(self) -> int:
        return len(self.records)


class RequestLogger:
    """Bounded queue plus one writer thread; counts what it wrote and what it had to drop.

    Modes: `per_request` writes one run per request (3 tracking calls each); `grouped` writes whatever is queued
    (up to `group_size` records) as one run with the records as a table artifact; `auto` writes per request while
    the writer keeps up, groups once `auto_backlog` records wait, and goes back to one run per request when a group
    gathered over `flush_interval_s` holds fewer than that.

    Grouped runs are written at most once per `flush_interval_s` (sooner when a whole group is waiting): writing a
    run costs the tracking server and this process CPU that requests need, and the requests that arrive meanwhile
    wait for it. Under sustained load one run every ten seconds (or per `group_size` records) touches fewer of them
    than one a second, and far fewer than one every few dozen milliseconds (README, B3 with the request log).
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        queue_size: int = 10_000,
        timeout_s: float = 5.0,
        backoff_s: float = 1.0,
        enabled: bool = True,
        mode: str = MODE_PER_REQUEST,
        group_size: int = 1000,
        auto_backlog: int = 50,
        flush_interval_s: float = 10.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"request log mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self._group_size = group_size
        self._auto_backlog = auto_backlog
        self._flush_interval_s = flush_interval_s
        self._grouping = mode == MODE_GROUPED  # auto mode: set while the writer is behind
        self._flush = threading.Event()  # set on stop: write what is queued without waiting for the interval
        self.runs = 0
        self.enabled = enabled
        self._tracking_uri = tracking_uri
        self._experiment = experiment
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._queue: queue.Queue[RequestRecord] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._in_flight = 0
        self.written = 0
        self.lost = 0
        self.tracking_reachable: bool | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        # MLflow's REST client retries for minutes by default; the writer has its own backoff and must notice
        # an outage quickly. Explicit environment settings still win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(1, self._timeout_s))))
        # MLflow prints "View run ... at: URL" to stdout for every run it finishes: thousands of lines under load.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self._client = MlflowClient(self._tracking_uri)
        self._thread = threading.Thread(target=self._work, name="request-log", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Write what is queued for up to `drain_timeout_s`, then count the rest as lost."""
        if self._thread is None:
            return
        self._flush.set()
        deadline = time.monotonic() + drain_timeout_s
        while self.pending and time.monotonic() < deadline and self.tracking_reachable is not False:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=max(0.1, deadline - time.monotonic()) + self._timeout_s)
        # The record in flight, if any, is settled by the writer itself (written, or counted lost on stop).
        dropped = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            dropped += 1
        if dropped:
            self._count_lost(dropped)
            logger.error("request log: %d record(s) still queued at shutdown were lost", dropped)
        self._thread = None

    def submit(self, record: RequestRecord) -> None:
        """Enqueue a record for writing; never blocks the request."""
        if not self.enabled:
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._count_lost(1)
            if self.lost in (1, 10, 100) or self.lost % 1000 == 0:
                logger.error("request log queue is full: %d request log(s) lost so far", self.lost)

    @property
    def pending(self) -> int:
        return self._queue.qsize() + self._in_flight

    def health(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "mode": self.mode,
            "runs": self.runs,
            "queued": self.pending,
            "written": self.written,
            "lost": self.lost,
            "tracking_reachable": self.tracking_reachable,
            "last_error": self.last_error,
        }

    def _work(self) -> None:
        last_group = -np.inf
        while not self._stop.is_set():
            try:
                record = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            item: RequestRecord | RecordGroup = record
            self._in_flight = 1
            try:
                if self._groups_now():
                    self._gather(until=last_group + self._flush_interval_s)
                    last_group = time.monotonic()
                    item = RecordGroup([record, *self._take(self._group_size - 1)])
                    if self.mode == MODE_AUTO and item.size < self._auto_backlog:
                        self._grouping = False  # requests slowed down: back to one run each
                self._in_flight = item.size
                self._write_until_done(item)
            finally:
                self._in_flight = 0

    def _groups_now(self) -> bool:
        if self.mode == MODE_AUTO and self._queue.qsize() >= self._auto_backlog:
            self._grouping = True
        return self._grouping

    def _gather(self, until: float) -> None:
        """Let requests queue up until `until` (monotonic seconds), a whole group waits, or the logger stops."""
        while not self._flush.is_set() and self._queue.qsize() < self._group_size - 1:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            self._flush.wait(min(remaining, 0.05))

    def _take(self, most: int) -> list[RequestRecord]:
        taken: list[RequestRecord] = []
        while len(taken) < most:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return taken

    def _write_until_done(self, item: RequestRecord | RecordGroup) -> None:
        delay = self._backoff_s
        while True:
            try:
                self._write_group(item) if isinstance(item, RecordGroup) else self._write(item)
            except Exception as error:  # noqa: BLE001 - any tracking failure is retried, never raised
                if self.tracking_reachable is not False:
                    logger.warning("request log: tracking unavailable (%s); retrying with backoff", error)
                self.tracking_reachable = False
                self.last_error = f"{type(error).__name__}: {str(error)[:300]}"
                if self._stop.wait(delay):
                    self._count_lost(item.size)
                    return
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            if self.tracking_reachable is False:
                logger.info("request log: tracking is back")
            self.tracking_reachable = True
            with self._lock:
                self.written += item.size
                self.runs += 1
            return

    def _write_group(self, group: RecordGroup) -> None:
        """Many requests in one run: their records as a table artifact, aggregate metrics, the time span.

        Four tracking calls. `MlflowClient.log_table` would take eight (it lists the run's artifacts to append to
        an existing table, asks for the run twice and sets the tag separately); the run here is new, so the table
        is uploaded as `log_table` writes it and the tag that makes it a table is set with the run."""
        client = self._client
        assert client is not None
        records = group.records
        if group.stage == 0:
            run = client.create_run(
                self._ensure_experiment(),
                start_time=min(r.started_ms for r in records),
                tags={"status": GROUPED, "log_mode": self.mode, MLFLOW_LOGGED_ARTIFACTS: TABLE_TAG},
                run_name="recommendations",
            )
            group.run_id, group.artifact_uri, group.stage = run.info.run_id, run.info.artifact_uri, 1
        assert group.run_id is not None and group.artifact_uri is not None
        if group.stage == 1:
            with tempfile.TemporaryDirectory() as directory:
                path = Path(directory) / REQUESTS_TABLE
                path.write_bytes(_table_json(records))
                get_artifact_repository(group.artifact_uri, tracking_uri=self._tracking_uri).log_artifact(str(path))
            group.stage = 2
        if group.stage == 2:
            at = min(r.started_ms for r in records)
            metrics = [Metric(key, value, at, 0) for key, value in _aggregate(records).items()]
            client.log_batch(group.run_id, metrics=metrics, params=[Param("n_requests", str(len(records)))])
            group.stage = 3
        end = max(r.started_ms + int(r.latency_ms) for r in records)
        client.set_terminated(group.run_id, "FINISHED", end_time=end)
        group.stage = 4

    def _write(self, record: RequestRecord) -> None:
        client = self._client
        assert client is not None
        if record.stage == 0:
            run = client.create_run(
                self._ensure_experiment(),
                start_time=record.started_ms,
                tags={"status": record.status, "http_status": str(record.http_status)},
                run_name="recommendation",
            )
            record.run_id, record.stage = run.info.run_id, 1
        if record.stage == 1:
            client.log_batch(record.run_id, metrics=_metrics(record), params=_params(record), tags=_tags(record))
            record.stage = 2
        client.set_terminated(record.run_id, "FINISHED", end_time=record.started_ms + int(record.latency_ms))
        record.stage = 3

    def _ensure_experiment(self) -> str:
        if self._experiment_id is None:
            client = self._client
            assert client is not None
            found = client.get_experiment_by_name(self._experiment)
            if found is None:
                try:
                    self._experiment_id = client.create_experiment(self._experiment)
                except MlflowException:  # created concurrently by another gateway
                    self._experiment_id = client.get_experiment_by_name(self._experiment).experiment_id
            else:
                self._experiment_id = found.experiment_id
        return self._experiment_id

    def _count_lost(self, count: int) -> None:
        with self._lock:
            self.lost += count


def _params(record: RequestRecord) -> list[Param]:
    params = [Param("top_n", str(record.top_n))]
    if record.title:
        params.append(Param("title", record.title))
    if record.year is not None:
        params.append(Param("year", str(record.year)))
    params += [Param(key, value) for key, value in record.extra.items()]
    return params


def _metrics(record: RequestRecord) -> list[Metric]:
    at = record.started_ms
    return [Metric("n_returned", record.n_returned, at, 0), Metric("latency_ms", round(record.latency_ms, 3), at, 0)]


def _tags(record: RequestRecord) -> list[RunTag]:
    return [RunTag("model_version", record.model_version or "unknown")]


def _table_json(records: list[RequestRecord]) -> bytes:
    """The records as the JSON `MlflowClient.log_table` writes for a table (pandas' `to_json(orient="split")` without
    the index: columns, then one row per request), encoded in one orjson call instead of through a DataFrame: the
    writer thread shares the GIL with the requests (`python -m benchmarks.request_log`, B6, reports its CPU per run:
    25 ms for 1,000 records, 46 ms through a DataFrame)."""
    rows = [
        [
            r.started_ms,
            r.title,
            r.top_n,
            r.year,
            r.status,
            r.http_status,
            r.n_returned,
            round(r.latency_ms, 3),
            r.model_version,
            orjson.dumps(r.extra).decode() if r.extra else "",
        ]
        for r in records
    ]
    return orjson.dumps({"columns": TABLE_COLUMNS, "data": rows})


def _aggregate(records: list[RequestRecord]) -> dict[str, float]:
    latency = np.array([r.latency_ms for r in records])
    ok = sum(r.status == "ok" for r in records)
    return {
        "n_requests": float(len(records)),
        "n_ok": float(ok),
        "n_errors": float(len(records) - ok),
        "n_returned_mean": float(np.mean([r.n_returned for r in records])),
        "latency_ms_mean": float(latency.mean()),
        "latency_ms_p50": float(np.percentile(latency, 50)),
        "latency_ms_p99": float(np.percentile(latency, 99)),
    }


def read_requests_table(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """A grouped run's records, as `_write_group` logged them (`MlflowClient.log_table`: columns and data)."""
    with tempfile.TemporaryDirectory() as directory:
        table = orjson.loads(Path(client.download_artifacts(run_id, REQUESTS_TABLE, directory)).read_bytes())
    return pd.DataFrame(table["data"], columns=table["columns"])


def logged_requests(client: MlflowClient, experiment: str, since_ms: int = 0) -> pd.DataFrame:
    """Every request the log holds in `experiment` that started at or after `since_ms`, one row each, whether it
    has a run of its own or is a row of a grouped run's table: columns `started_ms`, `title`, `grouped`."""
    columns = ["started_ms", "title", "grouped"]
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame(columns=columns)
    own, groups, token = [], [], None
    while True:
        page = client.search_runs(
            [found.experiment_id], f"attributes.end_time >= {since_ms}", max_results=5000, page_token=token
        )
        for run in page:
            if run.data.tags.get("status") == GROUPED:
                table = read_requests_table(client, run.info.run_id)[["started_ms", "title"]]
                groups.append(table.assign(grouped=True))
            else:
                own.append((run.info.start_time, run.data.params.get("title", ""), False))
        token = page.token
        if not token:
            break
    frame = pd.concat([pd.DataFrame(own, columns=columns), *groups], ignore_index=True)
    return frame[frame["started_ms"] >= since_ms].reset_index(drop=True)
