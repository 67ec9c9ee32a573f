"""B6: how fast the gateway's request log writes to MLflow, and how long a backlog of 20,000 takes to drain.

    python -m benchmarks.request_log [--tracking-uri http://127.0.0.1:5000] [--records 300] [--backlog 20000]

Runs the gateway's own RequestLogger (gateway/request_log.py) against a local sqlite store and against the
tracking server: records per second one run per request, then a 20,000-record backlog in grouped mode. Against the
tracking server it also reports the CPU each run costs this process (the writer's share of a gateway) and the
tracking server (read from /proc: it must run on this machine). Compares with the gateway's sustained throughput
from B3 when benchmarks/results/b2_b3_b4_serving.json exists.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.common import RESULTS, cpu_s, descendants, listening_pid, write_result
from gateway.app import configure_mlflow_client
from gateway.request_log import RequestLogger
from gateway.request_runs import RequestRecord
from gateway.settings import Settings


def records(n: int, prefix: str) -> list[RequestRecord]:
    return [RequestRecord(f"{prefix} {i}", 10, None, "ok", 200, 10, 2.5, "1") for i in range(n)]


def drain(uri: str, experiment: str, items: list[RequestRecord], mode: str) -> dict[str, float]:
    """Queue everything, start the writer, time until all is written; CPU per run of this process and, for an
    HTTP tracking server on this machine, of the server."""
    log = RequestLogger(uri, experiment, queue_size=len(items) + 1, mode=mode, group_size=1000)
    for item in items:
        log.submit(item)
    server = tracking_processes(uri)
    server_cpu, own_cpu, started = cpu_s(*server), time.process_time(), time.perf_counter()
    log.start()
    while log.written + log.rejected + log.lost < len(items):
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    own_cpu, server_cpu = time.process_time() - own_cpu, cpu_s(*server) - server_cpu
    log.stop()
    figures = {
        "records": len(items),
        "runs": log.runs,
        "rejected": log.rejected,
        "lost": log.lost,
        "seconds": round(seconds, 2),
        "records_per_second": round(len(items) / seconds, 1),
        "writer_cpu_ms_per_run": round(1000 * own_cpu / max(log.runs, 1), 1),
    }
    if server:
        figures["tracking_server_cpu_ms_per_run"] = round(1000 * server_cpu / max(log.runs, 1), 1)
    return figures


def tracking_processes(uri: str) -> list[int]:
    """The processes of the tracking server at an http:// `uri` on this machine (none for other stores)."""
    parts = urlsplit(uri)
    server = listening_pid(parts.port or 80) if parts.scheme == "http" else None
    return [server, *descendants(server)] if server else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", default="http://127.0.0.1:5000")
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--backlog", type=int, default=20_000)
    args = parser.parse_args()
    configure_mlflow_client(Settings())  # as the gateway process is configured
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
