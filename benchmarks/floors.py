"""The floors under B2 and B3 on this machine: what each hop costs with nothing behind it, measured with the same
load generator and request bodies as benchmarks/serving.py, sequentially.

    python -m benchmarks.floors [--requests 2000]

- scoring hop: a do-nothing pyfunc (benchmarks/floor_model.py) under `mlflow models serve`, started the way the
  supervisor starts the recommender (`gateway.supervisor.MLFLOW_MODELS`, uvicorn's access log off).
- gateway hop: a do-nothing FastAPI POST route (this module's `app`) under uvicorn, as `python -m gateway` runs it.
The sum of the two p50s is the least a request through the gateway can take here with `mlflow models serve` behind
it, before either process does any work of its own. Writes benchmarks/results/floors.json when run alone.

A third floor needs the real scoring server, so benchmarks/serving.py measures it beside B3 (`forwarding_hop`): a
FastAPI route (`forwarding`) that wraps the body into the gateway's scoring request, sends it through the gateway's
own upstream pool and returns the scoring server's answer unread: two hops and the model, no gateway logic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response

from benchmarks.common import answers, detached, load, post_bytes, wait_for, write_result
from gateway.scoring import RECORDS_AS_TEXT
from gateway.supervisor import MLFLOW_MODELS, pick_port
from gateway.upstream import UpstreamPool

HOST = "127.0.0.1"
FLOOR_MODEL = Path(__file__).with_name("floor_model.py")
QUERY = {"title": "The Matrix", "top_n": 10}
SCORING_PARAMS = {"mode": "recommend", **RECORDS_AS_TEXT}  # what the gateway sends

app = FastAPI()


@app.post("/movies/recommendations/")
async def do_nothing(request: Request) -> Response:
    await request.body()
    return Response(b'{"recommendations": []}', media_type="application/json")


FORWARD_TO = "FLOOR_SCORING_URL"  # where `forwarding` sends what it receives


@asynccontextmanager
async def _upstream(app: FastAPI) -> AsyncIterator[None]:
    app.state.upstream = UpstreamPool(os.environ[FORWARD_TO])
    yield
    await app.state.upstream.close()


forwarding = FastAPI(lifespan=_upstream)
SCORING_PREFIX = b'{"inputs": ['
SCORING_SUFFIX = b'], "params": ' + json.dumps(SCORING_PARAMS).encode() + b"}"


@forwarding.post("/movies/recommendations/")
async def forward(request: Request) -> Response:
    status, answer = await request.app.state.upstream.post(
        "/invocations", SCORING_PREFIX + await request.body() + SCORING_SUFFIX
    )
    return Response(answer, status_code=status, media_type="application/json")


def forwarding_hop(requests: int, scoring_port: int, bodies: list[bytes]) -> dict[str, Any]:
    """Sequential p50/p99 of `forwarding` under uvicorn in front of the scoring server on `scoring_port`, for the
    gateway's request `bodies` (cycled to `requests`)."""
    port = pick_port(HOST, 0)
    command = [sys.executable, "-m", "uvicorn", "benchmarks.floors:forwarding", "--port", str(port), "--no-access-log"]
    env = {FORWARD_TO: f"http://{HOST}:{scoring_port}"}
    return _measure(command, port, "/movies/recommendations/", bodies, requests, env)


def scoring_hop(requests: int) -> dict[str, Any]:
    """Sequential p50/p99 of /invocations on a do-nothing pyfunc under `mlflow models serve`."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="floor-model-") as folder:
        model_dir = Path(folder) / "model"
        mlflow.pyfunc.save_model(str(model_dir), python_model=str(FLOOR_MODEL), input_example=([QUERY], SCORING_PARAMS))
        port = pick_port(HOST, 0)
        command = [*MLFLOW_MODELS, "serve", "-m", str(model_dir), "--env-manager", "local", "--port", str(port)]
        body = json.dumps({"inputs": [QUERY], "params": SCORING_PARAMS}).encode()
        return _measure(command, port, "/invocations", [body], requests)


def gateway_hop(requests: int) -> dict[str, Any]:
    """Sequential p50/p99 of a do-nothing FastAPI POST route under uvicorn."""
    port = pick_port(HOST, 0)
    command = [sys.executable, "-m", "uvicorn", "benchmarks.floors:app", "--port", str(port), "--no-access-log"]
    return _measure(command, port, "/movies/recommendations/", [json.dumps(QUERY).encode()], requests)


def _measure(
    command: list[str], port: int, path: str, bodies: list[bytes], requests: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Start `command`, wait until `path` answers, warm up, then `requests` sequential POSTs cycling `bodies`."""
    with detached(command, env) as popen:
        wait_for(lambda: answers(f"http://{HOST}:{port}{path}", bodies[0]), popen)
        sent = [post_bytes(HOST, port, path, body) for body in bodies]
        load(HOST, port, (sent * (200 // len(sent) + 1))[:200], 1)  # warm-up
        return load(HOST, port, (sent * (requests // len(sent) + 1))[:requests], 1)


def floors(requests: int) -> dict[str, Any]:
    scoring, gateway = scoring_hop(requests), gateway_hop(requests)
    return {
        "scoring_hop_do_nothing_pyfunc": scoring,
        "gateway_hop_do_nothing_fastapi": gateway,
        "two_hops_p50_ms": round(scoring["p50_ms"] + gateway["p50_ms"], 3),
        "two_hops_p99_ms": round(scoring["p99_ms"] + gateway["p99_ms"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    write_result("floors", floors(parser.parse_args().requests))


if __name__ == "__main__":
    main()
