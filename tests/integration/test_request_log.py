"""The request log writer against a tracking server that goes away and comes back (a real `mlflow server`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.request_log import RequestLogger
from tests import processes
from tests.gateway.test_request_log import record, runs_by_title, wait_for

pytestmark = pytest.mark.integration


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
