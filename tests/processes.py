"""Real processes for tests: free loopback ports, start in a new session, wait on health, stop by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.supervisor import stop_group

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment with the venv first on PATH (`mlflow models serve` execs uvicorn by name)."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.update(extra)
    return env


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, wait until every member is gone, SIGKILL what is left after `timeout`.

        `mlflow models serve` runs uvicorn as a child: the leader exiting does not mean the port is closed.
        """
        stop_group(self.popen.pid, timeout, reap=self.popen.poll)
        self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash would."""
        if self.alive:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def start(name: str, command: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> Process:
    log = log_dir / f"{name}.log"
    handle = log.open("ab")
    popen = subprocess.Popen(
        list(command), cwd=REPO, env=env or base_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    handle.close()
    return Process(name, popen, log)


def wait_http(process: Process, url: str, timeout: float = 180.0) -> None:
    """Poll `url` until it answers 200; fail early with the process's log if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.stop()
    raise TimeoutError(f"{process.name} did not answer {url} within {timeout:.0f} s:\n{process.tail()}")


def mlflow_server(log_dir: Path, data_dir: Path, port: int | None = None) -> tuple[Process, str]:
    """A real `mlflow server` (sqlite store, local artifact root) on a free loopback port; returns (process, URI)."""
    port = port or free_port()
    command = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{data_dir / 'mlflow.db'}",
        "--artifacts-destination", str(data_dir / "mlartifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = start(f"mlflow-{port}", command, log_dir)
    uri = f"http://127.0.0.1:{port}"
    wait_http(process, f"{uri}/health")
    return process, uri


def model_server(log_dir: Path, tracking_uri: str, model_uri: str, port: int | None = None) -> tuple[Process, str]:
    """A real `mlflow models serve` of `model_uri`; returns (process, base URL)."""
    port = port or free_port()
    command = [
        str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = start(f"serve-{port}", command, log_dir, base_env(MLFLOW_TRACKING_URI=tracking_uri))
    url = f"http://127.0.0.1:{port}"
    wait_http(process, f"{url}/ping")
    return process, url


def gateway(log_dir: Path, scoring_url: str, tracking_uri: str, **settings: str) -> tuple[Process, str]:
    """The real gateway (`python -m gateway`) on a free port; extra settings as GATEWAY_* variables."""
    port = free_port()
    env = base_env(
        GATEWAY_PORT=str(port),
        GATEWAY_SCORING_URL=scoring_url,
        GATEWAY_TRACKING_URI=tracking_uri,
        **{f"GATEWAY_{key.upper()}": value for key, value in settings.items()},
    )
    process = start(f"gateway-{port}", [sys.executable, "-m", "gateway"], log_dir, env)
    url = f"http://127.0.0.1:{port}"
    wait_http(process, f"{url}/health", timeout=60)
    return process, url
