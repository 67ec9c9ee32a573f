"""One scoring server: `mlflow models serve` of a local model copy in its own process group, tethered to this process,
waited for on `/ping` and warmed up through the model's own contract before it gets any traffic; or one an earlier
supervisor left running, found by its PID file.

A port is picked free, then bound seconds later by the server: something else may take it meanwhile. An answer
counts only when a process of the server's own group listens on the port, and the model must name the build run
the registry names for its version.
"""

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
_PORT_IN_USE = re.compile(r"address already in use", re.IGNORECASE)


class LaunchFailed(Exception):
    """A scoring server did not start, or did not answer its warm-up correctly."""


class DownloadFailed(LaunchFailed):
    """The version's files could not be fetched (registry or artifact store away): not the version's fault."""


class PortTaken(LaunchFailed):
    """Another process took the server's port before it could bind it: not the version's fault."""


@dataclass
class ScoringServer:
    """A started `mlflow models serve` of one version."""

    version: str
    url: str
    child: processes.Child | processes.Adopted
    model_dir: Path
    build_run_id: str | None = None

    @property
    def alive(self) -> bool:
        return self.child.alive

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

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


@dataclass
class Leftover:
    """A scoring server an earlier supervisor left running; what it serves is not known yet."""

    url: str
    child: processes.Adopted

    def serving(self, version: str, model_dir: Path) -> ScoringServer:
        return ScoringServer(version, self.url, self.child, model_dir)


def find_leftovers(host: str, state_dir: Path) -> list[Leftover]:
    """The scoring servers the PID files in `state_dir` name; files naming none are removed."""
    found = []
    for pid_file in sorted(state_dir.glob(PID_PATTERN)):
        port = pid_file.stem.removeprefix("scoring-")
        child = processes.adopt(pid_file, b"mlflow") if port.isdigit() else None
        if child is not None:
            found.append(Leftover(f"http://{host}:{port}", child))
    return found


def spawn(
    settings: SupervisorSettings, state_dir: Path, version: str, model_dir: Path, preferred_port: int
) -> ScoringServer:
    """Start `mlflow models serve` of `model_dir` on `preferred_port` (a free one when taken, or when 0)."""
    port = processes.pick_port(settings.serve_host, preferred_port)
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
    child = processes.start(f"scoring-{port}", command, log, pid_file=pid_file, env=env, tethered=True)
    logger.info("started `mlflow models serve` for version %s: pid %d, port %d, log %s", version, child.pid, port, log)
    return ScoringServer(version, f"http://{settings.serve_host}:{port}", child, model_dir)


async def wait_ready(http: httpx.AsyncClient, server: ScoringServer, deadline: float) -> None:
    """Return once the server answers `/ping` with 200; PortTaken when another process holds its port, LaunchFailed
    when it exits or `deadline` (monotonic) passes."""
    while time.monotonic() < deadline:
        if not server.alive:
            if _PORT_IN_USE.search(server.child.tail(40)):
                raise PortTaken(f"port {server.port} was taken before the server could bind it")
            raise LaunchFailed(
                f"the server exited with {server.child.returncode}: {server.cause()} (log: {server.child.log})"
            )
        try:
            response = await http.get(f"{server.url}/ping", timeout=_left(deadline))
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            if processes.listened_elsewhere(server.child.pid, server.port):
                raise PortTaken(f"another process answers on port {server.port}")
            return
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


def check_identity(server: ScoringServer, build_run_id: str | None) -> None:
    """LaunchFailed unless the server's model names build run `build_run_id` (the one the registry names for the
    version; None: nothing to check against)."""
    if build_run_id is not None and server.build_run_id != build_run_id:
        raise LaunchFailed(
            f"the model at {server.url} names build run {server.build_run_id!r}; version {server.version} is build "
            f"run {build_run_id!r}"
        )


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
