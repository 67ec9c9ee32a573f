"""The request log: each recommendation request as MLflow data, written off the request path.

`submit` only enqueues (never blocks, never raises). One background thread writes with `MlflowClient` and explicit
run ids (the fluent API would share one active run across concurrent requests). When tracking is down a write is
retried with backoff until it succeeds, so nothing is lost while the queue has room; a record that finds the queue
full, or is still queued when the gateway stops, is counted as lost, logged and shown in /health.

Modes: `per_request` writes one run per request (params title/top_n/year..., metrics n_returned/latency_ms, tags
status/http_status/model_version); `grouped` writes whatever is queued (up to `group_size` records) as one run
tagged `status=grouped`, holding the records as the table `requests.json` (`MlflowClient.log_table`) and aggregate
metrics; `auto` writes per request while the writer keeps up, groups once `auto_backlog` records wait, and goes back
to one run per request when a group gathered over `flush_interval_s` holds fewer than that. Grouped runs are written
at most once per `flush_interval_s` (sooner when a whole group waits): each run costs the tracking server and this
process CPU that requests need, so under sustained load fewer, larger runs leave more of it to the requests.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gateway.request_runs import RecordGroup, RequestRecord, write_group, write_record

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
MODE_PER_REQUEST, MODE_GROUPED, MODE_AUTO = "per_request", "grouped", "auto"
MODES = (MODE_PER_REQUEST, MODE_GROUPED, MODE_AUTO)


class RequestLogger:
    """Bounded queue plus one writer thread; counts what it wrote and what it had to drop."""

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
        self.mode, self.enabled = mode, enabled
        self._tracking_uri, self._experiment = tracking_uri, experiment
        self._timeout_s, self._backoff_s = timeout_s, backoff_s
        self._group_size, self._auto_backlog, self._flush_interval_s = group_size, auto_backlog, flush_interval_s
        self._grouping = mode == MODE_GROUPED  # auto mode: set while the writer is behind
        self._queue: queue.Queue[RequestRecord] = queue.Queue(maxsize=queue_size)
        self._flush = threading.Event()  # set on stop: write what is queued without waiting for the interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._in_flight = 0
        self.runs = self.written = self.lost = 0
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
        """Write what is queued for up to `drain_timeout_s` seconds, then count the rest as lost."""
        if self._thread is None:
            return
        self._flush.set()
        deadline = time.monotonic() + drain_timeout_s
        while self.pending and time.monotonic() < deadline and self.tracking_reachable is not False:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=max(0.1, deadline - time.monotonic()) + self._timeout_s)
        # The record in flight, if any, is settled by the writer itself (written, or counted lost on stop).
        dropped = len(self._take(self._queue.qsize()))
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
        last_group = float("-inf")
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
                if isinstance(item, RecordGroup):
                    write_group(self._tracking(), self._ensure_experiment, item, self.mode)
                else:
                    write_record(self._tracking(), self._ensure_experiment, item)
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

    def _tracking(self) -> MlflowClient:
        assert self._client is not None, "start() first"
        return self._client

    def _ensure_experiment(self) -> str:
        if self._experiment_id is None:
            client = self._tracking()
            found = client.get_experiment_by_name(self._experiment)
            if found is not None:
                self._experiment_id = found.experiment_id
            else:
                try:
                    self._experiment_id = client.create_experiment(self._experiment)
                except MlflowException:  # created concurrently by another gateway
                    self._experiment_id = client.get_experiment_by_name(self._experiment).experiment_id
        return self._experiment_id

    def _count_lost(self, count: int) -> None:
        with self._lock:
            self.lost += count
