"""One scoring server: `mlflow models serve` of a local model copy in its own process group, waited for on `/ping`
and warmed up through the model's own contract before it gets any traffic."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from supervisor import processes
from supervisor.settings import SupervisorSettings

logger = logging.getLogger(__name__)

PID_PATTERN = "scoring-*.pid"
LOG_PATTERN = "scoring-*.log"
KEEP_LOGS = 5  # logs of scoring servers no longer running, newest first (every promotion starts one on a new port)
# `mlflow models serve`, entered through MLflow's `mlflow models` command group itself: the top-level `mlflow` CLI
# imports every other command group first (the tracking server, the assistant...), CPU spent next to the server
# that is answering while a new version starts.
MLFLOW_MODELS = (sys.executable, "-c", "from mlflow.models.cli import commands; commands(prog_name='mlflow models')")
PING_EVERY_S = 0.25
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit): ")


class LaunchFailed(Exception):
    """A scoring server did not start, or did not answer its warm-up correctly."""


class DownloadFailed(LaunchFailed):
    """The version's files could not be fetched (registry or artifact store away): not the version's fault."""


@dataclass
class ScoringServer:
    """A started `mlflow models serve` of one version."""

    version: str
    url: str
    child: processes.Child
    model_dir: Path
    build_run_id: str | None = None

    @property
    def alive(self) -> bool:
        return self.child.alive

    def stop(self) -> None:
        """Stop its whole process group (uvicorn runs as a child of `mlflow models serve`) and drop its PID file."""
        self.child.stop()

    def cause(self) -> str:
        """The error its log names last (MLflow's own "command returned non zero" wrapper skipped)."""
        errors = [
            line.strip()
            for line in self.child.tail(400).splitlines()
            if _ERROR_LINE.match(line) and not line.startswith("Exception: Command")
        ]
        return errors[-1][:500] if errors else "no error in its log"


def spawn(settings: SupervisorSettings, state_dir: Path, version: str, model_dir: Path) -> ScoringServer:
    """Start `mlflow models serve` of `model_dir` on the preferred port (a free one when taken)."""
    port = processes.pick_port(settings.serve_host, settings.serve_port)
    processes.prune_logs(state_dir, LOG_PATTERN, KEEP_LOGS)
    command = [
        *MLFLOW_MODELS, "serve",
        "-m", str(model_dir), "--env-manager", "local",
        "--host", settings.serve_host, "--port", str(port), "--workers", str(settings.serve_workers),
    ]  # fmt: skip
    env = dict(os.environ)
    # `mlflow models serve` execs uvicorn by name: the interpreter's bin/ must be on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    env["UVICORN_ACCESS_LOG"] = str(settings.access_log).lower()  # the uvicorn it execs reads UVICORN_*
    log, pid_file = state_dir / f"scoring-{port}.log", state_dir / f"scoring-{port}.pid"
    child = processes.start(f"scoring-{port}", command, log, pid_file=pid_file, env=env)
    logger.info("started `mlflow models serve` for version %s: pid %d, port %d, log %s", version, child.pid, port, log)
    return ScoringServer(version, f"http://{settings.serve_host}:{port}", child, model_dir)


async def wait_ready(http: httpx.AsyncClient, server: ScoringServer, deadline: float) -> None:
    """Return once `/ping` answers 200; LaunchFailed when the server exits or `deadline` (monotonic) passes."""
    while time.monotonic() < deadline:
        if not server.alive:
            raise LaunchFailed(
                f"the server exited with {server.child.returncode}: {server.cause()} (log: {server.child.log})"
            )
        try:
            response = await http.get(f"{server.url}/ping", timeout=_left(deadline))
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(PING_EVERY_S)
    raise LaunchFailed(f"no answer to /ping before the start timeout (log: {server.child.log})")


async def warm_up(http: httpx.AsyncClient, server: ScoringServer, deadline: float) -> str | None:
    """Real predictions through the model's contract (`info`, a title search, a recommendation); the first ones
    also pay for lazy loading. Returns the build run id the model names; LaunchFailed when an answer is wrong."""
    info = await _predict(http, server.url, {}, "info", deadline)
    if info.get("status") != "ok" or not info.get("n_films"):
        raise LaunchFailed(f"`info` answered {str(info)[:300]}")
    found = await _predict(http, server.url, {"title": "the", "top_n": 1}, "search", deadline)
    if found.get("status") != "ok":
        raise LaunchFailed(f"a title search answered {str(found)[:300]}")
    if found.get("results"):
        title = found["results"][0]["title"]
        answer = await _predict(http, server.url, {"title": title, "top_n": 5}, "recommend", deadline)
        if answer.get("status") != "ok":
            raise LaunchFailed(f"recommending for {title!r} answered {str(answer)[:300]}")
    return info.get("build_run_id")


async def _predict(http: httpx.AsyncClient, url: str, row: dict[str, Any], mode: str, deadline: float) -> dict:
    """One query's record; a scoring-server error becomes LaunchFailed with the server's own message."""
    try:
        response = await http.post(
            f"{url}/invocations", json={"inputs": [row], "params": {"mode": mode}}, timeout=_left(deadline)
        )
        answer = response.json()
    except httpx.HTTPError as error:
        raise LaunchFailed(f"`{mode}`: {type(error).__name__}: {error}") from error
    except ValueError as error:
        raise LaunchFailed(f"`{mode}` answered {response.status_code} with unreadable JSON") from error
    if response.status_code != 200:
        answer = answer if isinstance(answer, dict) else {"message": str(answer)}
        trace = [line for line in str(answer.get("stack_trace") or "").splitlines() if line.strip()]
        cause = f" ({trace[-1].strip()[:300]})" if trace else ""  # the model's own exception, last in the trace
        raise LaunchFailed(f"`{mode}` answered {response.status_code}: {str(answer.get('message'))[:300]}{cause}")
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != 1 or not isinstance(predictions[0], dict):
        raise LaunchFailed(f"`{mode}` answered an unexpected shape: {str(answer)[:300]}")
    return predictions[0]


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())
