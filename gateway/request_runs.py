"""What the request log writes to MLflow: a run per request, or a run per group of requests with a table.

Each write is a few tracking calls done in stages; a write that failed part-way is retried from the stage it
reached, so a retry continues the same run instead of making a second one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

GROUPED = "grouped"  # the `status` tag of a run that holds many requests
REQUESTS_TABLE = "requests.json"  # a grouped run's records, one row per request


@dataclass
class RequestRecord:
    """What one request leaves in MLflow (`latency_ms` in milliseconds, `started_ms` Unix milliseconds)."""

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
    stage: int = 0  # the next step to do: create, table, metrics, finish
    table_tried: bool = False  # a failed table write may have left part of it: the retry starts a new run

    @property
    def size(self) -> int:
        return len(self.records)


def write_group(client: MlflowClient, experiment: Callable[[], str], group: RecordGroup, mode: str) -> None:
    """Many requests as one run (continuing from `group.stage` after a failure): their records as a table,
    aggregate metrics, the time span they cover. `experiment` gives the experiment id."""
    records = group.records
    started = min(r.started_ms for r in records)
    if group.stage == 1 and group.table_tried:  # the table may be half there: `log_table` would append to it
        client.delete_run(group.run_id)
        group.stage, group.table_tried = 0, False
    if group.stage == 0:
        tags = {"status": GROUPED, "log_mode": mode}
        run = client.create_run(experiment(), start_time=started, tags=tags, run_name="recommendations")
        group.run_id, group.stage = run.info.run_id, 1
    if group.stage == 1:
        group.table_tried = True
        client.log_table(group.run_id, data=_table(records), artifact_file=REQUESTS_TABLE)
        group.stage = 2
    if group.stage == 2:
        metrics = [Metric(key, value, started, 0) for key, value in _aggregate(records).items()]
        client.log_batch(group.run_id, metrics=metrics, params=[Param("n_requests", str(len(records)))])
        group.stage = 3
    end = max(r.started_ms + int(r.latency_ms) for r in records)
    client.set_terminated(group.run_id, "FINISHED", end_time=end)


def write_record(client: MlflowClient, experiment: Callable[[], str], record: RequestRecord) -> None:
    """One request as one run (continuing from `record.stage` after a failure)."""
    if record.stage == 0:
        run = client.create_run(
            experiment(),
            start_time=record.started_ms,
            tags={"status": record.status, "http_status": str(record.http_status)},
            run_name="recommendation",
        )
        record.run_id, record.stage = run.info.run_id, 1
    if record.stage == 1:
        client.log_batch(record.run_id, metrics=_metrics(record), params=_params(record), tags=_tags(record))
        record.stage = 2
    client.set_terminated(record.run_id, "FINISHED", end_time=record.started_ms + int(record.latency_ms))


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


def _table(records: list[RequestRecord]) -> dict[str, list[Any]]:
    """The records as table columns, one row per request; `params` holds the richer requests' params as JSON."""
    return {
        "started_ms": [r.started_ms for r in records],
        "title": [r.title for r in records],
        "top_n": [r.top_n for r in records],
        "year": [r.year for r in records],
        "status": [r.status for r in records],
        "http_status": [r.http_status for r in records],
        "n_returned": [r.n_returned for r in records],
        "latency_ms": [round(r.latency_ms, 3) for r in records],
        "model_version": [r.model_version for r in records],
        "params": [orjson.dumps(r.extra).decode() if r.extra else "" for r in records],
    }


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
