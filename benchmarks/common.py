"""Shared pieces of the benchmarks: percentiles, a lean HTTP/1.1 load generator, resident memory, result files."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from supervisor.processes import Child, start

RESULTS = Path(__file__).parent / "results"
HOST = "127.0.0.1"
JSON = {"Content-Type": "application/json"}


def known_titles(n: int, seed: int = 0) -> list[str]:
    """`n` known titles, in a seeded order: the 1,000 best-known films of the default catalog whose title is unique
    there (so each names one film)."""
    from model.catalog import load_catalog

    movies = load_catalog().movies
    unique = movies[~movies["title"].str.lower().duplicated(keep=False)]
    chosen = unique.sort_values("reviews", ascending=False)["title"].head(1000).tolist()
    return [chosen[i % len(chosen)] for i in np.random.default_rng(seed).permutation(n)]


def summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    values = np.asarray(latencies_ms, dtype=np.float64)
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "mean_ms": round(float(values.mean()), 3),
    }


def write_result(name: str, figures: dict[str, Any]) -> Path:
    """benchmarks/results/NAME.json with the machine and the exact command, and the figures printed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu_count": os.cpu_count(),
        "cpu_model": _proc_value("/proc/cpuinfo", "model name"),
        "memory_gib": round(int((_proc_value("/proc/meminfo", "MemTotal") or "0 kB").split()[0]) / 2**20, 1),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # what the machine's CPUs did from this benchmark's start to now (see cpu_shares)
        "machine_cpu": cpu_shares(_STARTED, cpu_counters()),
        "figures": figures,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({name: figures, "machine_cpu": record["machine_cpu"]}, indent=2))
    return path


def last_build(store: str, experiment: str) -> tuple[Any, dict[str, float]]:
    """The newest run of `experiment` in tracking store `store` (a pandas row of its params and metrics), and its
    step timings: the build's `seconds_*` metrics."""
    import mlflow

    mlflow.set_tracking_uri(store)
    run = mlflow.search_runs(experiment_ids=[experiment], order_by=["start_time DESC"], max_results=1).iloc[0]
    steps = {k.split(".", 1)[1]: round(float(v), 2) for k, v in run.items() if k.startswith("metrics.seconds_")}
    return run, steps


def _proc_value(path: str, key: str) -> str | None:
    """The value of the first `key: value` line of a /proc file, or None."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == key), None)


@contextmanager
def detached(command: Sequence[str], env: Mapping[str, str] | None = None) -> Iterator[Child]:
    """`command` in a session of its own (supervisor/processes.py), output discarded, with the venv's bin/ on PATH
    (`mlflow models serve` execs uvicorn through bash) and uvicorn's access log off; stopped on the way out."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    full_env = {**os.environ, "PATH": path, "UVICORN_ACCESS_LOG": "false", **(env or {})}
    child = start(Path(command[0]).name, command, Path(os.devnull), env=full_env)
    try:
        yield child
    finally:
        child.stop()


def wait_for(ready: Callable[[], bool], child: Child, limit_s: float = 180) -> None:
    """Poll `ready` until it holds; SystemExit when the process exits or `limit_s` passes first."""
    deadline = time.monotonic() + limit_s
    while not ready():
        if not child.alive or time.monotonic() > deadline:
            raise SystemExit(f"{' '.join(map(str, child.popen.args))} did not start (exit code {child.returncode})")
        time.sleep(0.1)


def answers(url: str, body: bytes | None = None) -> bool:
    """Whether `url` answers 200 now (a GET, or a JSON POST of `body`)."""
    request = urllib.request.Request(url, body, JSON if body is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def rss_mb(pid: int, children: bool = True) -> float:
    """Resident memory of a process (and its descendants, unless `children` is False), in MiB (from /proc)."""
    total = 0
    for proc in [pid, *(descendants(pid) if children else [])]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def stack_memory(gateway_pid: int | None, scoring_pid: int | None) -> dict[str, float]:
    """Resident MiB of the gateway (alone: under `python -m gateway serve` the scoring server is its child) and of
    the scoring server; empty when either process was not found."""
    if not gateway_pid or not scoring_pid:
        return {}
    return {"gateway": rss_mb(gateway_pid, children=False), "scoring_server": rss_mb(scoring_pid)}


def cpu_s(*pids: int) -> float:
    """User + system CPU seconds the processes `pids` have used so far, together (from /proc; 0 for one gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), depth first."""
    children: list[int] = []
    try:
        direct = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return children
    for child in map(int, direct):
        children += [child, *descendants(child)]
    return children


def listening_pid(port: int) -> int | None:
    """The process that listens on a loopback TCP port (from /proc/net/tcp and /proc/*/fd)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd).startswith("socket:[") and os.readlink(fd)[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def scoring_port(gateway_port: int) -> int:
    """The port of the scoring server the gateway uses now (the supervisor may have moved it)."""
    url = httpx.get(f"http://127.0.0.1:{gateway_port}/health", timeout=10).json()["scoring"]["url"]
    return int(url.rsplit(":", 1)[1].split("/")[0])


def post_json(url: str, body: bytes, timeout_s: float = 60) -> Any:
    """The parsed JSON answer to a POST of JSON `body` to `url` (an HTTP error status raises)."""
    with urllib.request.urlopen(urllib.request.Request(url, body, JSON), timeout=timeout_s) as response:
        return json.loads(response.read())


def post_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _load(host: str, port: int, requests: Sequence[bytes], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cursor = iter(range(len(requests)))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in cursor:
                started = time.perf_counter()
                try:
                    status = await _exchange(reader, writer, requests[i])
                except (ConnectionError, asyncio.IncompleteReadError):
                    status = 0
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    errors = sum(count for status, count in statuses.items() if status != 200)
    return {
        "latencies_ms": latencies,
        **summary(latencies),
        "concurrency": concurrency,
        "throughput_rps": round(len(requests) / elapsed, 1),
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def load(host: str, port: int, requests: Sequence[bytes], concurrency: int = 1, raw: bool = False) -> dict[str, Any]:
    """Send every request over `concurrency` keep-alive connections, as fast as answers come; latency summary,
    rate and what the machine's CPUs did meanwhile (and every latency, with `raw`)."""
    before = cpu_counters()
    result = asyncio.run(_load(host, port, requests, concurrency))
    result["machine_cpu"] = cpu_shares(before, cpu_counters())
    if not raw:
        del result["latencies_ms"]
    return result


def cpu_counters() -> list[int]:
    """The machine's CPU time counters: the `cpu` line of /proc/stat (user nice system idle iowait irq softirq steal);
    empty where there is no /proc."""
    try:
        with open("/proc/stat") as stat:
            return [int(value) for value in stat.readline().split()[1:9]]
    except OSError:
        return []


def cpu_shares(before: list[int], after: list[int]) -> dict[str, float]:
    """Percent of all CPUs' time between two `cpu_counters` readings that was busy, idle, and stolen: taken by the
    hypervisor for other guests while this machine had work. On a shared virtual machine, steal is why the same
    code measures slower in one minute than in the next; the latency figures should be read beside it."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent)
    if not total:
        return {}
    idle, steal = spent[3] + spent[4], spent[7]
    return {
        "busy_percent": round(100 * (total - idle - steal) / total, 1),
        "idle_percent": round(100 * idle / total, 1),
        "steal_percent": round(100 * steal / total, 1),
    }


_STARTED = cpu_counters()  # read when a benchmark imports this module, at its start
