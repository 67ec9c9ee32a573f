"""The event log: impressions, feedback and shadow results written to the event store off the request path.

`submit` only enqueues (never blocks, never raises). One background thread takes what is queued, up to `group_size`
records, and writes it in one transaction (`EventStore.write`). While the database is down, unreachable or locked
(`events.store.is_transient`) the same group is retried with backoff (`backoff_s` doubling to `MAX_BACKOFF_S`) and
later records wait in the queue. A group the database refuses (bad data, a bug) is written again record by record,
so the one record it refuses is rejected and counted and the rest are written. A record that finds the queue full,
or is still queued when the gateway stops, is counted as lost. Rejected and lost records are logged and shown in
/health with the last error: `written + duplicates + rejected + lost + queued` is every record submitted, exactly,
at every instant (`queued` counts the group being written too).

The store is created and migrated when the writer starts; a database down at start is retried the same way, and
the gateway serves meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

from events.history import UserEvent, recent_events
from events.records import Forget, Record
from events.store import EventStore, StoredAnswer, WriteResult, display_url, is_transient

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
IDLE_WAIT_S = 0.2  # how long the writer sleeps on an empty queue before it looks at the stop flag again

Entry = tuple[Record, "Future[int] | None"]  # a queued record, and for a Forget the future its caller waits on


class EventLogUnavailable(RuntimeError):
    """The event log cannot take or apply this: it is disabled, not started, full, or stopped."""


class EventLog:
    """Bounded queue plus one writer thread into the event store at `uri`; counts every record submitted."""

    def __init__(
        self,
        uri: str,
        queue_size: int = 100_000,
        group_size: int = 500,
        backoff_s: float = 1.0,
        busy_timeout_s: float = 5.0,
        enabled: bool = True,
        gather_s: float = 0.2,
    ) -> None:
        """`gather_s`: how long the writer lets a group gather once one event waits."""
        self.enabled, self._uri, self.url = enabled, uri, display_url(uri)  # url: without the password
        self._queue_size, self._group_size = queue_size, group_size
        self._backoff_s, self._busy_timeout_s, self._gather_s = backoff_s, busy_timeout_s, gather_s
        self._migrated = False
        self._entries: deque[Entry] = deque()
        self._ready = threading.Condition()  # guards the queue and every count below
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: EventStore | None = None
        self.queued = self.written = self.duplicates = self.rejected = self.lost = 0
        self.database_reachable: bool | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        """Create the store (an invalid URI raises here) and start the writer, which migrates it first."""
        if not self.enabled or self._thread is not None:
            return
        self._store = EventStore(self._uri, busy_timeout_s=self._busy_timeout_s)
        # Migrated here, before the gateway's other threads start: Alembic's context is process-wide, and MLflow (a
        # sqlite tracking URI) migrates its own database with it. Only a store that is away now migrates later.
        self._migrated = self._migrate_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name="event-log", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Write what is queued for up to `drain_timeout_s` seconds (less when the database is down), then count
        the rest as lost."""
        if self._thread is None:
            return
        deadline = time.monotonic() + drain_timeout_s
        while self.queued and time.monotonic() < deadline and self.database_reachable is not False:
            time.sleep(0.02)
        self._stop.set()
        with self._ready:
            self._ready.notify()
        self._thread.join(timeout=max(0.1, deadline - time.monotonic()) + self._busy_timeout_s)
        # The group in flight, if any, is settled by the writer itself (written, rejected, or lost on stop).
        with self._ready:
            left = list(self._entries)
            self._entries.clear()
        if left:
            self._settle(left, lost=len(left))
            logger.error("event log: %d record(s) still queued at shutdown were lost", len(left))
        self._thread = None
        if self._store is not None:
            self._store.dispose()

    def submit(self, record: Record) -> None:
        """Enqueue a record for writing; never blocks the request."""
        if self.enabled:
            self._enqueue(record, None)

    def forget(self, user: str) -> Future[int]:
        """Queue a Forget of `user`; the future gives the feedback rows it deleted once applied (behind whatever
        was queued before it), or raises EventLogUnavailable when it was lost, the store's error when refused."""
        if self._thread is None:
            raise EventLogUnavailable("the event log is disabled" if not self.enabled else "the event log is stopped")
        future: Future[int] = Future()
        self._enqueue(Forget(user), future)
        return future

    def answer(self, request_id: str) -> StoredAnswer | None:
        """The stored answer to `request_id` (blocking: call it from a worker thread); the store's errors raise."""
        if self._store is None:
            raise EventLogUnavailable("the event log is disabled" if not self.enabled else "the event log is stopped")
        return self._store.answer(request_id)

    def history(self, user: str, limit: int) -> list[UserEvent]:
        """The `limit` most recent stored feedback events of `user`, newest first (blocking: call it from a worker
        thread); the store's errors raise."""
        if self._store is None:
            raise EventLogUnavailable("the event log is disabled" if not self.enabled else "the event log is stopped")
        return recent_events(self._store.engine, user, limit)

    def health(self) -> dict[str, Any]:
        with self._ready:
            return {
                "enabled": self.enabled,
                "url": self.url,
                "written": self.written,
                "duplicates": self.duplicates,
                "queued": self.queued,
                "lost": self.lost,
                "rejected": self.rejected,
                "database_reachable": self.database_reachable,
                "last_error": self.last_error,
            }

    def _enqueue(self, record: Record, future: Future[int] | None) -> None:
        with self._ready:
            if self.queued < self._queue_size:
                self._entries.append((record, future))
                self.queued += 1
                self._ready.notify()
                return
            self.lost += 1
            lost = self.lost
        if future is not None:
            future.set_exception(EventLogUnavailable("the event log's queue is full"))
        if _milestone(lost):
            logger.error("event log queue is full: %d event(s) lost so far", lost)

    def _migrate_once(self) -> bool:
        try:
            self._writer_store().migrate()
        except Exception as error:  # noqa: BLE001 - retried by the writer, which shows it in /health
            self._failed(error, "the event store is unavailable at start; migrating it when it is back")
            return False
        self._reached()
        return True

    def _work(self) -> None:
        if not self._migrated and not self._open():
            return
        while not self._stop.is_set():
            group = self._take()
            if group:
                self._write_group(group)

    def _open(self) -> bool:
        """Migrate the store, retrying with backoff until it works or the log stops; whether it worked."""
        delay = self._backoff_s
        while True:
            try:
                self._writer_store().migrate()
            except Exception as error:  # noqa: BLE001 - every failure is shown in /health and retried, never raised
                if is_transient(error):
                    self._failed(error, "the event store is unavailable; migrating it when it is back")
                else:
                    self._reached(error)
                    logger.error("event log: cannot migrate the event store (%s); retrying", self.last_error)
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            self._reached()
            return True

    def _take(self) -> list[Entry]:
        """Up to `group_size` queued entries, after waiting up to IDLE_WAIT_S for one; they stay counted queued."""
        with self._ready:
            if not self._entries:
                self._ready.wait(IDLE_WAIT_S)
            waiting = len(self._entries)
        if 0 < waiting < self._group_size:
            # Let a group gather: one transaction per few hundred events, not per event, costs the request path's
            # process a fraction of the CPU (the writer shares the GIL with it).
            self._stop.wait(self._gather_s)
        with self._ready:
            count = min(len(self._entries), self._group_size)
            return [self._entries.popleft() for _ in range(count)]

    def _write_group(self, group: list[Entry]) -> None:
        """Write `group`; when the database refuses it, write its records one by one so only the bad one fails."""
        outcome = self._write_until_answered(group)
        if isinstance(outcome, WriteResult):
            self._settle(group, written=outcome.written, duplicates=outcome.duplicates, forgotten=outcome.forgotten)
        elif outcome is None:
            self._settle(group, lost=len(group))
        elif len(group) == 1:
            self._settle(group, rejected=1, error=outcome)
            logger.error("event log: the database refused a %s (%s)", type(group[0][0]).__name__, self.last_error)
        else:
            for entry in group:
                self._write_group([entry])

    def _write_until_answered(self, group: Sequence[Entry]) -> WriteResult | Exception | None:
        """The database's answer to `group`: its result, or the error it refused it with. Transient failures are
        retried with backoff; None when the log stopped first."""
        delay = self._backoff_s
        while True:
            try:
                result = self._writer_store().write([record for record, _ in group])
            except Exception as error:  # noqa: BLE001 - every failure is counted or retried, never raised
                if not is_transient(error):
                    self._reached(error)
                    return error
                self._failed(error, "the event store is unavailable; retrying with backoff")
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            self._reached()
            return result

    def _settle(
        self,
        group: Sequence[Entry],
        written: int = 0,
        duplicates: int = 0,
        rejected: int = 0,
        lost: int = 0,
        forgotten: tuple[int, ...] = (),
        error: Exception | None = None,
    ) -> None:
        """Count how a group ended (it is queued no more) and answer the futures of its Forgets."""
        with self._ready:
            self.queued -= len(group)
            self.written += written
            self.duplicates += duplicates
            self.rejected += rejected
            self.lost += lost
        _answer(group, forgotten, error)

    def _reached(self, error: Exception | None = None) -> None:
        """The database answered (with `error` when it refused a write)."""
        if self.database_reachable is False:
            logger.info("event log: the event store is back")
        self.database_reachable = True
        if error is not None:
            self.last_error = _describe(error)

    def _failed(self, error: Exception, message: str) -> None:
        if self.database_reachable is not False:
            logger.warning("event log: %s (%s)", message, _describe(error))
        self.database_reachable = False
        self.last_error = _describe(error)

    def _writer_store(self) -> EventStore:
        assert self._store is not None, "start() first"
        return self._store


def _answer(group: Sequence[Entry], forgotten: tuple[int, ...], error: Exception | None) -> None:
    """Resolve the futures of the group's Forgets: with the rows each deleted (`forgotten`, in group order, when
    the group was written), else with `error` (it was refused) or EventLogUnavailable (it was lost). A future its
    caller gave up on (cancelled: the route stopped waiting) is left as it is."""
    counts = iter(forgotten)
    for record, future in group:
        if not isinstance(record, Forget):
            continue
        count = next(counts, None)
        if future is None:
            continue
        try:
            if count is not None:
                future.set_result(count)
            else:
                future.set_exception(
                    error or EventLogUnavailable("the event log stopped before the user was forgotten")
                )
        except InvalidStateError:
            pass  # cancelled meanwhile, from the caller's thread


def _milestone(count: int) -> bool:
    """Whether a running count of dropped records is worth a log line (1, 10, 100, then every 1000)."""
    return count in (1, 10, 100) or count % 1000 == 0


def _describe(error: BaseException) -> str:
    """An error for /health: its type and the first line of the database's own message (never the statement)."""
    origin = getattr(error, "orig", None) or error
    lines = str(origin).strip().splitlines() or [""]
    return f"{type(origin).__name__}: {lines[0][:300]}"
