"""Real processes for tests: `mlflow server`, `mlflow models serve` and the gateway on free loopback ports, started
in a session of their own (supervisor/processes.py), waited for on their health endpoints, stopped by process group.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

from supervisor.processes import Child, pick_port
from supervisor.processes import start as start_child

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

Process = Child
T = TypeVar("T")


def free_port() -> int:
    """A loopback port nothing listens on now."""
    return pick_port("127.0.0.1", 0)


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment with the venv first on PATH (`mlflow models serve` execs uvicorn by name)."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.update(extra)
    return env


def start(name: str, command: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> Process:
    """`command` from the repository root, in a session of its own, its output in `log_dir/NAME.log`."""
    return start_child(name, command, log_dir / f"{name}.log", env=env or base_env(), cwd=REPO)


def wait_until(condition: Callable[[], T], timeout: float, step: float = 0.25) -> T:
    """`condition()` once it is truthy, polled every `step` seconds; its last value when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


def wait_http(process: Process, url: str, timeout: float = 180.0) -> None:
    """Poll `url` until it answers 200; fail early with the process's log if it exits, and stop it on a timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive:
            raise RuntimeError(f"{process.name} exited with {process.returncode}:\n{process.tail()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.stop()
    raise TimeoutError(f"{process.name} did not answer {url} within {timeout:.0f} s:\n{process.tail()}")


def mlflow_server(
    log_dir: Path,
    data_dir: Path,
    port: int | None = None,
    admin: tuple[str, str] | None = None,
    backend_store_uri: str | None = None,
    store_env: dict[str, str] | None = None,
) -> tuple[Process, str]:
    """A real `mlflow server` (sqlite store in `data_dir`, artifacts proxied to `data_dir/mlartifacts`) on a free
    loopback port; returns (process, URI).

    With `admin` (username, password): MLflow's basic-auth app, which creates that user as its admin on start; every
    route but /health then needs credentials. With `backend_store_uri` (e.g. postgresql://...): that store instead,
    given through MLFLOW_BACKEND_STORE_URI as `make up` gives it, with `store_env` (what its driver reads, such as
    PGPASSWORD) in the server's environment only."""
    port = port or free_port()
    command = [
        str(BIN / "mlflow"), "server",
        "--artifacts-destination", str(data_dir / "mlartifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = base_env(MLFLOW_BACKEND_STORE_URI=backend_store_uri or f"sqlite:///{data_dir / 'mlflow.db'}")
    env.update(store_env or {})
    if admin is not None:
        command += ["--app-name", "basic-auth"]
        env.update(basic_auth_env(data_dir, *admin))
        for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):  # they would win over the file
            env.pop(name, None)
    process = start(f"mlflow-{port}", command, log_dir, env)
    uri = f"http://127.0.0.1:{port}"
    wait_http(process, f"{uri}/health")
    return process, uri


def basic_auth_env(data_dir: Path, username: str, password: str) -> dict[str, str]:
    """What MLflow's basic-auth app reads at start: its config file (written to `data_dir/basic_auth.ini`: users in
    `data_dir/basic_auth.db`, `username` the admin, READ for every signed-in user by default) and a secret key."""
    config = data_dir / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{data_dir / 'basic_auth.db'}\n"
        f"admin_username = {username}\n"
        f"admin_password = {password}\n"
    )
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32)}


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


def gateway(
    log_dir: Path, scoring_url: str, tracking_uri: str, *args: str, wait: str = "/health", **settings: str
) -> tuple[Process, str]:
    """The real gateway (`python -m gateway ARGS`) on a free port, once `wait` answers 200; extra settings as
    GATEWAY_* variables (the event store: a SQLite file of its own in `log_dir` unless `events_uri` is given)."""
    port = free_port()
    settings.setdefault("events_uri", f"sqlite:///{log_dir / f'events-{port}.db'}")  # never the developer's store
    env = base_env(
        GATEWAY_PORT=str(port),
        GATEWAY_SCORING_URL=scoring_url,
        GATEWAY_TRACKING_URI=tracking_uri,
        **{f"GATEWAY_{key.upper()}": value for key, value in settings.items()},
    )
    process = start(f"gateway-{port}", [sys.executable, "-m", "gateway", *args], log_dir, env)
    url = f"http://127.0.0.1:{port}"
    wait_http(process, f"{url}{wait}", timeout=60)
    return process, url
