"""The request log: each recommendation request as MLflow data, written off the request path.

`submit` only enqueues (never blocks, never raises). One background thread writes with `MlflowClient` and explicit
run ids (the fluent API would share one active run across concurrent requests). When tracking is down or failing
(no answer, a timeout, a 5xx) a write is retried with backoff until it succeeds, so nothing is lost while the queue
has room. When tracking answers and refuses a write (`request_runs.is_refusal`: the experiment was deleted or is
gone, a run was deleted, a value is invalid), the writer repairs what it can (restores the experiment, or creates
it again) and tries again at once; a record refused `MAX_REFUSALS` times is dropped and counted as rejected, so one
that can never be written does not hold up those behind it. A record that finds the queue full, or is still queued
when the gateway stops, is counted as lost. Rejected and lost records are logged and shown in /health with the last
error: `written + rejected + lost + queued` is every record submitted.

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
import queue
import threading
import time
from typing import Any

from mlflow.tracking import MlflowClient

from gateway.request_runs import (
    RecordGroup,
    RequestRecord,
    abandon,
    continue_or_restart,
    is_refusal,
    usable_experiment,
    write_group,
    write_record,
)

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
MAX_REFUSALS = 3  # a write refused this many times, with repairs between the tries, is given up on
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
        self.runs = self.written = self.rejected = self.lost = 0
        self.tracking_reachable: bool | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        """Start the writer (MLflow's client timeouts and retries are the process's: see gateway.app)."""
        if not self.enabled or self._thread is not None:
            return
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
        # The record in flight, if any, is settled by the writer itself (written, rejected, or lost on stop).
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
            if _milestone(self.lost):
                logger.error("request log queue is full: %d request log(s) lost so far", self.lost)

    @property
    def pending(self) -> int:
        return self._queue.qsize() + self._in_flight

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "mode": self.mode,
                "runs": self.runs,
                "queued": self.pending,
                "written": self.written,
                "rejected": self.rejected,
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
        """Write `item`: transient failures are retried with backoff for as long as the logger runs, refusals
        `MAX_REFUSALS` times."""
        delay, refusals = self._backoff_s, 0
        while True:
            try:
                if refusals:
                    self._repair(item)
                self._write(item)
            except Exception as error:  # noqa: BLE001 - every tracking failure is counted or retried, never raised
                self.last_error = _describe(error)
                if is_refusal(error):
                    refusals += 1
                    self._answered()
                    if refusals < MAX_REFUSALS:
                        continue
                    self._reject(item)
                    return
                if self.tracking_reachable is not False:
                    logger.warning("request log: tracking unavailable (%s); retrying with backoff", error)
                self.tracking_reachable = False
                if self._stop.wait(delay):
                    self._finish(item, lost=item.size)
                    return
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            self._answered()
            self._finish(item, written=item.size)
            return

    def _write(self, item: RequestRecord | RecordGroup) -> None:
        if isinstance(item, RecordGroup):
            write_group(self._tracking(), self._ensure_experiment, item, self.mode)
        else:
            write_record(self._tracking(), self._ensure_experiment, item)

    def _repair(self, item: RequestRecord | RecordGroup) -> None:
        """After a refusal: look the experiment up again (restoring or creating it) and check the item's run."""
        self._experiment_id = None
        self._ensure_experiment()
        continue_or_restart(self._tracking(), item)

    def _reject(self, item: RequestRecord | RecordGroup) -> None:
        abandon(self._tracking(), item)
        self._finish(item, rejected=item.size)
        if item.size > 1 or _milestone(self.rejected):
            logger.error(
                "request log: tracking refused %d record(s) %d times (%s); %d rejected so far",
                item.size, MAX_REFUSALS, self.last_error, self.rejected,
            )  # fmt: skip

    def _answered(self) -> None:
        if self.tracking_reachable is False:
            logger.info("request log: tracking is back")
        self.tracking_reachable = True

    def _finish(self, item: RequestRecord | RecordGroup, written: int = 0, rejected: int = 0, lost: int = 0) -> None:
        """Count how the writer's item ended; it is in flight no more."""
        with self._lock:
            self.written += written
            self.rejected += rejected
            self.lost += lost
            self.runs += bool(written)
            self._in_flight = 0

    def _tracking(self) -> MlflowClient:
        assert self._client is not None, "start() first"
        return self._client

    def _ensure_experiment(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = usable_experiment(self._tracking(), self._experiment)
        return self._experiment_id

    def _count_lost(self, count: int) -> None:
        with self._lock:
            self.lost += count


def _milestone(count: int) -> bool:
    """Whether a running count of dropped records is worth a log line (1, 10, 100, then every 1000)."""
    return count in (1, 10, 100) or count % 1000 == 0


def _describe(error: Exception) -> str:
    """An error for /health: its type, MLflow's error code when it has one, the start of its message."""
    code = getattr(error, "error_code", None)
    return f"{type(error).__name__}{f' {code}' if code else ''}: {str(error)[:300]}"
