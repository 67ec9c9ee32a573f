"""B6: how fast the gateway's request log writes to MLflow, and how long a backlog of 20,000 takes to drain.

    python -m benchmarks.request_log [--tracking-uri http://127.0.0.1:5000] [--records 300] [--backlog 20000]

Runs the gateway's own RequestLogger (gateway/request_log.py) against a local sqlite store and against the
tracking server: records per second one run per request, then a 20,000-record backlog in grouped mode. Compares
with the gateway's sustained throughput from B3 when benchmarks/results/b2_b3_b4_serving.json exists.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, write_result
from gateway.request_log import RequestLogger, RequestRecord


def records(n: int, prefix: str) -> list[RequestRecord]:
    return [RequestRecord(f"{prefix} {i}", 10, None, "ok", 200, 10, 2.5, "1") for i in range(n)]


def drain(uri: str, experiment: str, items: list[RequestRecord], mode: str) -> dict[str, float]:
    """Queue everything, start the writer, time until all is written."""
    log = RequestLogger(uri, experiment, queue_size=len(items) + 1, mode=mode, group_size=1000)
    for item in items:
        log.submit(item)
    started = time.perf_counter()
    log.start()
    while log.written + log.lost < len(items):
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    log.stop()
    return {
        "records": len(items),
        "runs": log.runs,
        "lost": log.lost,
        "seconds": round(seconds, 2),
        "records_per_second": round(len(items) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", default="http://127.0.0.1:5000")
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--backlog", type=int, default=20_000)
    args = parser.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        sqlite = f"sqlite:///{Path(folder) / 'bench.db'}"
        drain(sqlite, "warm-up", records(5, "warm"), "per_request")
        figures["per_request_sqlite"] = drain(sqlite, "bench-per-request", records(args.records, "s"), "per_request")
    drain(args.tracking_uri, "bench-request-log", records(5, "warm"), "per_request")
    figures["per_request_http"] = drain(
        args.tracking_uri, "bench-request-log", records(args.records, "h"), "per_request"
    )
    figures["grouped_http_backlog"] = drain(
        args.tracking_uri, "bench-request-log", records(args.backlog, "g"), "grouped"
    )
    serving = RESULTS / "b2_b3_b4_serving.json"
    if serving.exists():
        sustained = json.loads(serving.read_text())["figures"]["b3_gateway"]["c32"]["throughput_rps"]
        figures["b3_sustained_rps"] = sustained
        figures["per_request_keeps_up"] = figures["per_request_http"]["records_per_second"] >= sustained
        figures["grouped_keeps_up"] = figures["grouped_http_backlog"]["records_per_second"] >= sustained
    write_result("b6_request_log", figures)


if __name__ == "__main__":
    main()
