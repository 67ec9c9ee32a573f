"""Promotion, rollback and a killed scoring server, under load, against the running stack (`make up`).

    python -m benchmarks.faults --to VERSION [--concurrency 8]        (`make faults TO=VERSION`)

Four switches of `champion`, each with 8 clients sending requests to the gateway throughout; measured: seconds from
the alias move to the first answer from the new version, requests sent, failed (anything but 200):
1. promotion_warm: `challenger` is pointed at VERSION first and the supervisor's standby of it is waited for (what
   a build that registers a challenger sets up), then `champion` is moved to VERSION;
2. rollback_cold: `champion` is moved back; nothing of that version is running: `mlflow models serve` starts;
3. promotion_cold: `challenger` is pointed at the serving version (no standby), `champion` moved to VERSION;
4. rollback_warm: `challenger` back at the first version, its standby waited for, `champion` moved back.
Then crash: the serving `mlflow models serve` process group gets SIGKILL; measured: seconds until answers return,
answers by status (503 only is the promise).
Writes benchmarks/results/faults.json. Both aliases end where they started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
from mlflow.tracking import MlflowClient

from benchmarks.common import HOST, write_result
from tests.integration.traffic import Traffic


def outcome(traffic: Traffic) -> dict:
    """Requests sent, failed (anything but 200) and the count of each status."""
    statuses = traffic.statuses()
    return {
        "sent": traffic.sent,
        "failed": traffic.sent - statuses[200],
        "statuses": {str(k): v for k, v in statuses.items()},
    }


async def switch(url: str, client: MlflowClient, name: str, version: str, concurrency: int, limit_s: float) -> dict:
    standby = httpx.get(f"{url}/health").json()["supervisor"]["standby"]
    warm = standby["ready"] and standby["version"] == version
    traffic = Traffic(url, concurrency)
    runner = asyncio.create_task(traffic.run())
    await asyncio.sleep(2)
    client.set_registered_model_alias(name, "champion", version)
    moved = time.monotonic()
    while version not in traffic.first_from and time.monotonic() - moved < limit_s:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    traffic.stop.set()
    await runner
    seen = traffic.first_from.get(version)
    return {
        "to_version": version,
        "from_warm_standby": warm,
        "switch_s": round(seen - moved, 2) if seen else None,
        **outcome(traffic),
    }


async def point_standby(url: str, client: MlflowClient, name: str, version: str, limit_s: float) -> None:
    """Point `challenger` at `version`; wait until the supervisor has it warm, unless it is the one served."""
    client.set_registered_model_alias(name, "challenger", version)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        supervisor = httpx.get(f"{url}/health").json()["supervisor"]
        if supervisor["serving_version"] == version or (
            supervisor["standby"]["ready"] and supervisor["standby"]["version"] == version
        ):
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"no warm standby of version {version} after {limit_s:.0f} s: {supervisor}")


async def crash(url: str, state_dir: Path, concurrency: int, limit_s: float) -> dict:
    traffic = Traffic(url, concurrency)
    runner = asyncio.create_task(traffic.run())
    await asyncio.sleep(2)
    serving = httpx.get(f"{url}/health").json()["scoring"]["url"].rsplit(":", 1)[1]
    group = int((state_dir / f"scoring-{serving}.pid").read_text())
    os.killpg(group, signal.SIGKILL)
    killed = time.monotonic()
    while traffic.recovered is None and time.monotonic() - killed < limit_s:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    traffic.stop.set()
    await runner
    back = traffic.recovered
    return {"answering_again_s": round(back - killed, 2) if back else None, **outcome(traffic)}


async def measure(args: argparse.Namespace) -> dict:
    url = f"http://{HOST}:{args.gateway_port}"
    client = MlflowClient(args.tracking_uri)
    name, to = args.model_name, args.to
    start = client.get_model_version_by_alias(name, "champion").version
    if to == start:
        raise SystemExit(f"champion is already version {start}: pass another --to")
    challenger = client.get_registered_model(name).aliases.get("challenger")
    figures = {"from_version": start, "concurrency": args.concurrency}
    try:
        await point_standby(url, client, name, to, args.limit_s)
        figures["promotion_warm"] = await switch(url, client, name, to, args.concurrency, args.limit_s)
        figures["rollback_cold"] = await switch(url, client, name, start, args.concurrency, args.limit_s)
        await point_standby(url, client, name, start, args.limit_s)  # the serving one: no standby
        figures["promotion_cold"] = await switch(url, client, name, to, args.concurrency, args.limit_s)
        await point_standby(url, client, name, start, args.limit_s)
        figures["rollback_warm"] = await switch(url, client, name, start, args.concurrency, args.limit_s)
        figures["crash"] = await crash(url, Path(args.state_dir), args.concurrency, args.limit_s)
    finally:
        client.set_registered_model_alias(name, "champion", start)
        if challenger is None:
            client.delete_registered_model_alias(name, "challenger")
        else:
            client.set_registered_model_alias(name, "challenger", challenger)
    figures["supervisor"] = httpx.get(f"{url}/health").json()["supervisor"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--to", required=True, help="version to promote for the measurement (rolled back after)")
    parser.add_argument("--model-name", default="movie-recommender")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument("--tracking-uri", default="http://127.0.0.1:5000")
    parser.add_argument("--state-dir", default=".run", help="the gateway's GATEWAY_STATE_DIR")
    parser.add_argument("--limit-s", type=float, default=120)
    figures = asyncio.run(measure(parser.parse_args()))
    write_result("faults", figures)
    switches = ["promotion_warm", "rollback_cold", "promotion_cold", "rollback_warm"]
    ok = (
        all(figures[k]["failed"] == 0 for k in switches)
        and all(figures[k]["from_warm_standby"] == k.endswith("_warm") for k in switches)
        and set(figures["crash"]["statuses"]) <= {"200", "503"}
        and all((figures[k]["switch_s"] or 1e9) <= 30 for k in switches)
        and (figures["crash"]["answering_again_s"] or 1e9) <= 30
    )
    print("faults:", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
