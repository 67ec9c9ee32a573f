"""What the request log writes to MLflow: a run per request, or a run per group of requests with a table.

Each write is a few tracking calls done in stages; a write that failed part-way is retried from the stage it
reached, so a retry continues the same run instead of making a second one. A write tracking refused (`is_refusal`)
is retried after `usable_experiment` and `continue_or_restart` repaired what can be repaired: an experiment deleted
in the MLflow UI is restored, one gone for good is created again, a run that can no longer take writes is started
over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from mlflow.entities import LifecycleStage, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

GROUPED = "grouped"  # the `status` tag of a run that holds many requests
REQUESTS_TABLE = "requests.json"  # a grouped run's records, one row per request

# MLflow error codes of a tracking server that answered and refused the call: the same call cannot succeed later.
# Everything else is worth retrying: MLflow reports a refused connection, a timeout and a 5xx as INTERNAL_ERROR (or
# TEMPORARILY_UNAVAILABLE, DEADLINE_EXCEEDED), rate limits as REQUEST_LIMIT_EXCEEDED; a missing permission or a 404
# page that is not MLflow's (ENDPOINT_NOT_FOUND) is the operator's to fix while the records wait.
REFUSALS = frozenset(
    {
        "BAD_REQUEST",
        "MALFORMED_REQUEST",
        "INVALID_PARAMETER_VALUE",  # also: create_run in a deleted experiment, a write to a deleted run
        "INVALID_STATE",
        "NOT_FOUND",
        "RESOURCE_DOES_NOT_EXIST",  # an experiment or run id that no longer exists
        "RESOURCE_ALREADY_EXISTS",
    }
)


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

    def restart(self) -> None:
        """Write it again from the start, in a new run."""
        self.run_id, self.stage = None, 0


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

    def restart(self) -> None:
        """Write it again from the start, in a new run."""
        self.run_id, self.stage, self.table_tried = None, 0, False


def is_refusal(error: BaseException) -> bool:
    """Whether tracking answered and refused the call (see `REFUSALS`), rather than failed to answer."""
    return isinstance(error, MlflowException) and error.error_code in REFUSALS


def usable_experiment(client: MlflowClient, name: str) -> str:
    """The id of the experiment called `name`, ready to take runs: restored if it was deleted (its runs come back
    with it), created if there is none."""
    found = client.get_experiment_by_name(name)  # deleted experiments too
    if found is None:
        try:
            return client.create_experiment(name)
        except MlflowException:
            found = client.get_experiment_by_name(name)  # created meanwhile by another gateway
            if found is None:
                raise
    if found.lifecycle_stage == LifecycleStage.DELETED:
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


def continue_or_restart(client: MlflowClient, item: RequestRecord | RecordGroup) -> None:
    """After a refusal: keep the item's run if it can still take writes; start the item over if it was deleted or
    is gone."""
    if item.run_id is None:
        return
    try:
        active = client.get_run(item.run_id).info.lifecycle_stage == LifecycleStage.ACTIVE
    except MlflowException as error:
        if not is_refusal(error):
            raise
        active = False
    if not active:
        item.restart()


def abandon(client: MlflowClient, item: RequestRecord | RecordGroup) -> None:
    """Mark the run of an item given up on as FAILED, so that it does not show as running for ever (best effort:
    the item is rejected either way)."""
    if item.run_id is None:
        return
    try:
        client.set_terminated(item.run_id, "FAILED")
    except Exception:  # a run that cannot be written to may not take this either
        logger.debug("could not mark abandoned run %s as FAILED", item.run_id, exc_info=True)


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
