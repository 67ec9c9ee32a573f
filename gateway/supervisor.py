"""The serving supervisor (`python -m gateway serve`, what `make up` runs): keeps one `mlflow models serve` of the
version an alias points at behind the gateway, and swaps versions without failing a request.

Every `poll_s` it asks the registry where `NAME@ALIAS` points. When that is not the version being served:
1. download the version's model files once into `STATE_DIR/models/` (in this process: a rollback or a restart reuses
   them) and start `mlflow models serve -m` that copy on a free loopback port, in its own process group;
2. wait for `/ping`, then warm it up through the real contract (`info`, a title search, a recommendation);
3. point the gateway at it (new requests go there; requests already sent finish where they are);
4. let the old server drain its in-flight requests, then stop it.
A version that fails to start or to warm up is stopped and remembered as failed (logged, and shown in /health);
the old version keeps serving. It is not retried until the alias moves again (to another version or back).
When the serving process dies, the same version is started again; requests get 503 while nothing answers.

A second alias (`standby_alias`, by default `challenger`) names the version most likely promoted next: it is kept
started and warmed up beside the serving one, with no traffic, so moving the followed alias to it switches at once
(steps 1-2 are done already). It is stopped when that alias moves elsewhere or its version becomes the served one.

Each child's process group id is written to `STATE_DIR/scoring-PORT.pid` (its output to `scoring-PORT.log`), so
a gateway that was killed outright leaves nothing behind: the next one, and `make down`, stop what the files name.
Logs of servers that are gone are kept for the `KEEP_LOGS` most recent ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mlflow.artifacts
import orjson
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gateway.scoring import INVOCATIONS, PING, Backend, ModelIdentity, ScoringClient
from gateway.settings import Settings
from gateway.upstream import UpstreamError, UpstreamPool

logger = logging.getLogger(__name__)

PID_GLOB = "scoring-*.pid"
LOG_GLOB = "scoring-*.log"
CHECK_S = 0.5  # how often the serving process is checked for life
KEEP_COPIES = 3  # local model copies kept: the serving version, the one before it (a rollback), one more
KEEP_LOGS = 5  # logs of scoring servers no longer running kept, newest first (every promotion starts one on a new port)
# `mlflow models serve`, entered through MLflow's `mlflow models` command group itself: the top-level `mlflow` CLI
# imports every other command group first (the tracking server, the assistant...), 1.5-2 s of CPU more per start
# on this machine, spent next to the server that is answering while a new version starts.
MLFLOW_MODELS = (sys.executable, "-c", "from mlflow.models.cli import commands; commands(prog_name='mlflow models')")
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit): ")


class LaunchFailed(Exception):
    """A scoring server did not start, or did not answer its warm-up correctly."""


class DownloadFailed(LaunchFailed):
    """The version's files could not be fetched (registry or artifact store away): tried again at the next poll."""


@dataclass
class ScoringProcess:
    """One `mlflow models serve` child: its process group, port, log and connection pool."""

    version: str
    port: int
    popen: subprocess.Popen[bytes]
    pid_file: Path
    log: Path
    backend: Backend
    model_dir: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return self.backend.upstream.url

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def cause(self) -> str:
        """The error its log names last (MLflow's own "command returned non zero" wrapper skipped)."""
        errors = [
            line.strip()
            for line in self.tail(400).splitlines()
            if _ERROR_LINE.match(line) and not line.startswith("Exception: Command")
        ]
        return errors[-1][:500] if errors else "no error in its log"

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the group (uvicorn runs as a child of `mlflow models serve`), SIGKILL what is left."""
        stop_group(self.popen.pid, timeout_s, reap=self.popen.poll)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(1)
        # A server started since on the same port (this one stopped listening before it exited) owns the file now.
        with contextlib.suppress(OSError, ValueError):
            if int(self.pid_file.read_text().strip()) == self.popen.pid:
                self.pid_file.unlink()


@dataclass
class SupervisorState:
    """What /health shows of the supervisor."""

    alias: str
    target: str | None = None  # where the alias pointed at the last successful look
    serving: str | None = None
    serving_url: str | None = None
    serving_since: float | None = None  # wall-clock time of the switch
    switching_to: str | None = None
    restarts: int = 0
    switches: int = 0
    last_switch_s: float | None = None  # alias seen moved -> new version serving
    failed: dict[str, str] = field(default_factory=dict)  # version -> why it was not switched to
    last_failure: str | None = None
    registry_error: str | None = None
    standby_alias: str | None = None
    standby_target: str | None = None  # where the standby alias pointed at the last look
    standby_version: str | None = None  # being started, or warm
    standby_url: str | None = None  # set once warm
    standby_failed: dict[str, str] = field(default_factory=dict)

    @property
    def troubled(self) -> bool:
        """The registry cannot be asked, or the alias points at a version that failed to start."""
        return self.registry_error is not None or (self.target is not None and self.target in self.failed)

    def public(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "target_version": self.target,
            "serving_version": self.serving,
            "serving_url": self.serving_url,
            "serving_since": self.serving_since,
            "switching_to": self.switching_to,
            "switches": self.switches,
            "last_switch_s": self.last_switch_s,
            "restarts": self.restarts,
            "failed_versions": dict(self.failed),
            "last_failure": self.last_failure,
            "registry_error": self.registry_error,
            "standby": {
                "alias": self.standby_alias,
                "target_version": self.standby_target,
                "version": self.standby_version,
                "ready": self.standby_url is not None,
                "url": self.standby_url,
                "failed_versions": dict(self.standby_failed),
            },
        }


class Supervisor:
    """Follows `settings.model_alias` of `settings.model_name` and keeps the gateway pointed at a warm server."""

    def __init__(self, settings: Settings, scoring: ScoringClient) -> None:
        self.settings = settings
        self.scoring = scoring
        self.state = SupervisorState(
            alias=f"{settings.model_name}@{settings.model_alias}",
            standby_alias=f"{settings.model_name}@{settings.standby_alias}" if settings.standby_alias else None,
        )
        self.current: ScoringProcess | None = None
        self.standby: ScoringProcess | None = None  # warm, no traffic
        self._standby_task: asyncio.Task[None] | None = None
        self._standby_starting: ScoringProcess | None = None  # its process, once spawned, until it is warm
        self._state_dir = Path(settings.state_dir).resolve()
        self._client = MlflowClient(settings.tracking_uri)
        # a progress bar per download is noise in logs (ours, and the scoring servers' that inherit this)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self._task: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._restart_after = 0.0
        self._restart_backoff = 1.0

    async def start(self) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        stopped = await anyio.to_thread.run_sync(stop_leftovers, self._state_dir)
        if stopped:
            logger.warning("stopped %d scoring server(s) left by a previous gateway: %s", len(stopped), stopped)
        self._task = asyncio.create_task(self._run(), name="supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._retired):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._standby_task is not None:  # a standby still starting: `_launch` stops its process when cancelled
            self._standby_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._standby_task
        for process in (self.current, self.standby):
            if process is not None:
                await process.backend.upstream.close()
                await anyio.to_thread.run_sync(process.stop)
        self.current = self.standby = None
        # a launch cancelled while its process was being spawned may have left one: its PID file names it
        await anyio.to_thread.run_sync(stop_leftovers, self._state_dir)

    async def _run(self) -> None:
        next_poll = 0.0
        while True:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + self.settings.poll_s
                aliases = await self._read_aliases()
                if aliases is not None:
                    await self._follow_alias(aliases.get(self.settings.model_alias))
                    await self._follow_standby(aliases.get(self.settings.standby_alias))
            if self.current is not None and not self.current.alive and now >= self._restart_after:
                await self._restart()
            await asyncio.sleep(CHECK_S)

    async def _read_aliases(self) -> dict[str, str] | None:
        """Where each alias of the model points (one registry call); None while the registry cannot be asked."""
        try:
            aliases = await anyio.to_thread.run_sync(self._aliases)
        except Exception as error:  # noqa: BLE001 - the registry being away must not stop serving
            if self.state.registry_error is None:
                logger.warning("cannot ask the registry where %s points: %s", self.state.alias, error)
            self.state.registry_error = f"{type(error).__name__}: {str(error)[:300]}"
            return None
        self.state.registry_error = None
        return aliases

    def _aliases(self) -> dict[str, str]:
        try:
            model = self._client.get_registered_model(self.settings.model_name)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return {}  # not registered (yet): nothing to serve
            raise
        return {alias: str(version) for alias, version in model.aliases.items()}

    async def _follow_alias(self, target: str | None) -> None:
        if target != self.state.target:
            logger.info("%s points at version %s", self.state.alias, target)
            self.state.target = target
            # The alias moved: versions that failed before get another chance when pointed at again.
            self.state.failed.pop(target or "", None)
        if target is None or target in self.state.failed:
            return
        if self.current is None or target != self.current.version:
            await self._switch(target, reason="alias moved")

    async def _follow_standby(self, target: str | None) -> None:
        """Keep the standby alias's version (`target`) warm, unless it is the one served (or failed to serve)."""
        if not self.settings.standby_alias:
            return
        if target != self.state.standby_target:
            self.state.standby_target = target
            self.state.standby_failed.pop(target or "", None)  # moved: a version that failed gets another chance
        wanted = target
        if wanted is not None and (
            wanted in self.state.failed
            or wanted in self.state.standby_failed
            or (self.current is not None and wanted == self.current.version)
        ):
            wanted = None
        if self.standby is not None and not self.standby.alive:
            logger.error("the standby server of version %s exited: starting it again", self.standby.version)
            self._drop_standby()
        if wanted == self.state.standby_version:
            return
        self._drop_standby()
        starting = self._standby_task is not None and not self._standby_task.done()
        if wanted is not None and not starting:  # (one still starting is being stopped; next poll then)
            self.state.standby_version = wanted
            self._standby_task = asyncio.create_task(self._prepare_standby(wanted), name="standby")

    async def _prepare_standby(self, version: str) -> None:
        logger.info("starting a standby scoring server for version %s (%s)", version, self.state.standby_alias)
        try:
            process = await self._launch(version, on_spawn=self._standby_spawned)
        except Exception as error:  # noqa: BLE001 - a standby that cannot start is shown, never fatal
            if self.state.standby_version != version:  # `_drop_standby` stopped it
                logger.info("stopped the standby server of version %s while it started: no longer wanted", version)
                return
            logger.error("the standby server of version %s did not start: %s", version, error)
            self.state.standby_version = None
            if not isinstance(error, DownloadFailed):  # a download is tried again at the next poll
                self.state.standby_failed[version] = str(error)[:1000]
            return
        finally:
            self._standby_starting = None
        if self.state.standby_version != version:  # no longer wanted (or taken over) while it warmed up
            await process.backend.upstream.close()
            await anyio.to_thread.run_sync(process.stop)
            return
        self.standby = process
        self.state.standby_url = process.url
        logger.info("standby: version %s is warm at %s", version, process.url)

    def _standby_spawned(self, process: ScoringProcess) -> None:
        self._standby_starting = process

    def _drop_standby(self) -> None:
        """Forget the standby: a warm one is stopped in the background; one still starting is killed now, so that
        its start-up (seconds of CPU) does not slow the server a promotion is waiting for."""
        self.state.standby_version = self.state.standby_url = None
        standby, self.standby = self.standby, None
        if standby is not None:
            self._in_background(self._retire(standby))
        starting = self._standby_starting
        if starting is not None and self._standby_task is not None and not self._standby_task.done():
            self._standby_starting = None
            self._in_background(anyio.to_thread.run_sync(starting.stop))  # its `_launch` then fails and cleans up

    async def _take_standby(self, version: str) -> ScoringProcess | None:
        """The warm standby of `version` (waiting for one still starting), or None."""
        if self.state.standby_version != version:
            return None
        if self._standby_task is not None and not self._standby_task.done():
            await asyncio.shield(self._standby_task)  # it is half-way there: cheaper than starting afresh
        standby = self.standby
        if standby is None or standby.version != version or not standby.alive:
            return None
        self.standby = None
        self.state.standby_version = self.state.standby_url = None
        try:  # warm when it was started; make sure it still answers
            await self._warm_up(standby)
        except (LaunchFailed, UpstreamError) as error:
            logger.error("the standby server of version %s no longer answers (%s): starting afresh", version, error)
            self._in_background(self._retire(standby))
            return None
        return standby

    def _in_background(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def _restart(self) -> None:
        dead = self.current
        assert dead is not None
        logger.error(
            "scoring server for version %s (pid %d) exited with %s; starting it again. Its log ends:\n%s",
            dead.version, dead.popen.pid, dead.popen.returncode, dead.tail(),
        )  # fmt: skip
        self.state.restarts += 1
        await anyio.to_thread.run_sync(dead.stop)  # whatever is left of its group, and its PID file
        # the files it served are still here: a restart needs neither the registry nor the artifact store
        local = dead.model_dir if (dead.model_dir / "MLmodel").is_file() else None
        if await self._switch(dead.version, reason="restart", local=local):
            self._restart_backoff = 1.0
        else:  # try again later, waiting longer each time; the alias may also move meanwhile
            self._restart_after = time.monotonic() + self._restart_backoff
            self._restart_backoff = min(self._restart_backoff * 2, 60.0)

    async def _switch(self, version: str, reason: str, local: Path | None = None) -> bool:
        """Start `version` (from `local` files when given), warm it up and send new requests to it; False (old server
        kept) when it fails."""
        began = time.monotonic()
        self.state.switching_to = version
        try:
            standby = await self._take_standby(version) if reason == "alias moved" else None
            if standby is None:
                logger.info("starting a scoring server for version %s (%s)", version, reason)
            fresh = standby or await self._launch(version, local)
        except LaunchFailed as error:
            failure = f"version {version} ({reason}): {str(error)[:1000]}"
            if failure != self.state.last_failure:  # a download retried every poll is logged once
                logger.error("version %s was not switched to (%s): %s", version, reason, error)
            self.state.last_failure = failure
            if reason == "alias moved" and not isinstance(error, DownloadFailed):
                self.state.failed[version] = str(error)[:1000]
            return False
        finally:
            self.state.switching_to = None
        previous = self.current
        self.scoring.use(fresh.backend)
        self.current = fresh
        self.state.serving, self.state.serving_url, self.state.serving_since = version, fresh.url, time.time()
        if reason == "alias moved":
            self.state.switches += 1
            self.state.last_switch_s = round(time.monotonic() - began, 2)
        logger.info(
            "now serving version %s at %s (%.1f s after %s%s)",
            version, fresh.url, time.monotonic() - began, reason, ", warm standby" if standby else "",
        )  # fmt: skip
        if previous is not None:
            self._in_background(self._retire(previous))
        return True

    async def _retire(self, old: ScoringProcess) -> None:
        drained = await old.backend.upstream.drain(self.settings.drain_timeout_s)
        if not drained:
            logger.warning(
                "version %s still had requests in flight after %.0f s", old.version, self.settings.drain_timeout_s
            )
        await anyio.to_thread.run_sync(old.stop)
        logger.info("stopped the scoring server of version %s (%s)", old.version, old.url)

    async def _launch(
        self, version: str, local: Path | None = None, on_spawn: Callable[[ScoringProcess], None] | None = None
    ) -> ScoringProcess:
        if local is None:
            try:
                local = await anyio.to_thread.run_sync(self._local_copy, version)
            except LaunchFailed:
                raise
            except Exception as error:  # the registry or the artifact store is away: not the version's fault
                raise DownloadFailed(f"cannot download version {version}: {type(error).__name__}: {error}") from error
        process = await anyio.to_thread.run_sync(self._spawn, version, local)
        if on_spawn is not None:
            on_spawn(process)
        try:
            await self._wait_ready(process)
            identity = await self._warm_up(process)
        except (LaunchFailed, UpstreamError) as error:
            await process.backend.upstream.close()
            await anyio.to_thread.run_sync(process.stop)
            raise LaunchFailed(f"{type(error).__name__}: {error}") from error
        except BaseException:
            await process.backend.upstream.close()
            await anyio.to_thread.run_sync(process.stop)
            raise
        process.backend.identity = identity
        return process

    def _local_copy(self, version: str) -> Path:
        """The version's model files in `STATE_DIR/models/`, downloaded from the registry unless already there.

        A registry version's files never change; the folder name carries a hash of where they come from, so a model
        deleted and registered again under the same version number is not served from a stale copy. Downloading here,
        in a thread of this process, spares `mlflow models serve` its two downloads of the same files (one to pick
        the flavor backend, one to serve) and the start-up of another Python process to do it."""
        name = self.settings.model_name
        source = self._client.get_model_version_download_uri(name, version)
        key = hashlib.sha256(source.encode()).hexdigest()[:12]
        models = self._state_dir / "models"
        folder = models / f"{name}-{version}-{key}"
        if (folder / "MLmodel").is_file():
            os.utime(folder)  # most recently used: kept longest
            return folder
        models.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=models))
        try:
            began = time.monotonic()
            downloaded = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=str(partial), tracking_uri=self.settings.tracking_uri
                )
            )
            if not (downloaded / "MLmodel").is_file():
                raise LaunchFailed(f"{source} has no MLmodel file: not an MLflow model")
            shutil.rmtree(folder, ignore_errors=True)  # an incomplete copy (no MLmodel) left by a killed gateway
            downloaded.rename(folder)
            logger.info("downloaded version %s (%s) in %.1f s", version, source, time.monotonic() - began)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        self._prune_copies(keep=folder)
        return folder

    def _prune_copies(self, keep: Path) -> None:
        """Delete all but the `KEEP_COPIES` most recently used copies (never `keep` or a copy being served)."""
        in_use = {keep.name} | {p.model_dir.name for p in (self.current, self.standby) if p is not None}
        copies = sorted(
            (p for p in (self._state_dir / "models").iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in copies[KEEP_COPIES:]:
            if old.name not in in_use:
                shutil.rmtree(old, ignore_errors=True)

    def _spawn(self, version: str, local: Path) -> ScoringProcess:
        settings = self.settings
        port = pick_port(settings.serve_host, settings.serve_port)
        prune_logs(self._state_dir, KEEP_LOGS)
        log = self._state_dir / f"scoring-{port}.log"
        pid_file = self._state_dir / f"scoring-{port}.pid"
        command = [
            *MLFLOW_MODELS, "serve",
            "-m", str(local), "--env-manager", "local",
            "--host", settings.serve_host, "--port", str(port), "--workers", str(settings.serve_workers),
        ]  # fmt: skip
        env = dict(os.environ)
        # `mlflow models serve` execs uvicorn by name: the interpreter's bin/ must be on PATH.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
        env["UVICORN_ACCESS_LOG"] = str(settings.access_log).lower()  # the uvicorn it execs reads UVICORN_*
        with log.open("ab") as handle:
            popen = subprocess.Popen(
                command, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        pid_file.write_text(f"{popen.pid}\n")
        pool = UpstreamPool(
            f"http://{settings.serve_host}:{port}",
            settings.max_connections,
            settings.connect_timeout_s,
            settings.timeout_s,
        )
        logger.info(
            "started `mlflow models serve` for version %s: pid %d, port %d, log %s", version, popen.pid, port, log
        )
        return ScoringProcess(version, port, popen, pid_file, log, Backend(pool, pinned=True), local)

    async def _wait_ready(self, process: ScoringProcess) -> None:
        deadline = time.monotonic() + self.settings.serve_start_timeout_s
        while time.monotonic() < deadline:
            if not process.alive:
                raise LaunchFailed(
                    f"the server exited with {process.popen.returncode}: {process.cause()} (log: {process.log})"
                )
            with contextlib.suppress(UpstreamError):
                status, _ = await process.backend.upstream.get(PING)
                if status == 200:
                    return
            await asyncio.sleep(0.25)
        raise LaunchFailed(f"no answer to /ping in {self.settings.serve_start_timeout_s:.0f} s")

    async def _warm_up(self, process: ScoringProcess) -> ModelIdentity:
        """Real predictions through the model's contract; the first ones also pay for lazy loading."""
        upstream = process.backend.upstream
        info = await _warm_call(upstream, {}, "info")
        if info.get("status") != "ok" or not info.get("n_films"):
            raise LaunchFailed(f"`info` answered {str(info)[:300]}")
        found = await _warm_call(upstream, {"title": "the", "top_n": 1}, "search")
        if found.get("status") != "ok":
            raise LaunchFailed(f"a title search answered {str(found)[:300]}")
        if found.get("results"):
            title = found["results"][0]["title"]
            answer = await _warm_call(upstream, {"title": title, "top_n": 5}, "recommend")
            if answer.get("status") != "ok":
                raise LaunchFailed(f"recommending for {title!r} answered {str(answer)[:300]}")
        return ModelIdentity(self.settings.model_name, process.version, info.get("build_run_id"))


async def _warm_call(upstream: UpstreamPool, row: dict[str, Any], mode: str) -> dict[str, Any]:
    """One warm-up query; a scoring-server error becomes LaunchFailed with the server's own message."""
    status, body = await upstream.post(INVOCATIONS, orjson.dumps({"inputs": [row], "params": {"mode": mode}}))
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise LaunchFailed(f"`{mode}` answered {status} with unreadable JSON: {body[:200]!r}") from error
    if status != 200:
        answer = answer if isinstance(answer, dict) else {"message": str(answer)}
        trace = [line for line in str(answer.get("stack_trace") or "").splitlines() if line.strip()]
        cause = f" ({trace[-1].strip()[:300]})" if trace else ""  # the model's own exception, last in the trace
        raise LaunchFailed(f"`{mode}` answered {status}: {str(answer.get('message'))[:300]}{cause}")
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != 1 or not isinstance(predictions[0], dict):
        raise LaunchFailed(f"`{mode}` answered an unexpected shape: {str(answer)[:300]}")
    return predictions[0]


def pick_port(host: str, preferred: int) -> int:
    """`preferred` when nothing listens there, else a free port the OS picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # as uvicorn binds: connections of a stopped server in TIME_WAIT do not make the port taken
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError(f"no free port on {host}")


def stop_group(pgid: int, timeout_s: float = 15.0, reap: Any = None) -> None:
    """SIGTERM process group `pgid`, wait until it is gone, SIGKILL it after `timeout_s`."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if reap is not None:
            reap()  # our own child: reap it, or its zombie keeps the group "alive"
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def stop_leftovers(state_dir: Path) -> list[int]:
    """Stop the scoring servers named by PID files in `state_dir` (left by a gateway that did not stop cleanly)."""
    stopped = []
    for pid_file in sorted(state_dir.glob(PID_GLOB)):
        with contextlib.suppress(ValueError, OSError):
            pgid = int(pid_file.read_text().strip())
            if _is_scoring_server(pgid):
                stop_group(pgid)
                stopped.append(pgid)
        pid_file.unlink(missing_ok=True)
    return stopped


def prune_logs(state_dir: Path, keep: int) -> list[Path]:
    """Delete the logs of scoring servers that are gone (no PID file beside the log), all but the `keep` newest;
    returns what was deleted. The log of a server that runs is never touched."""
    ended = []
    for log in state_dir.glob(LOG_GLOB):
        with contextlib.suppress(FileNotFoundError):
            if not log.with_suffix(".pid").exists():
                ended.append((log.stat().st_mtime, log))
    ended.sort(reverse=True)
    deleted = []
    for _, log in ended[keep:]:
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
            deleted.append(log)
    return deleted


def _is_scoring_server(pgid: int) -> bool:
    """Only signal a group that still runs MLflow's scoring server (a PID may have been reused since): the
    `mlflow models serve` leader, or the uvicorn it started when the leader is gone."""
    for pid in _pids():
        if _pgid(pid) != pgid:
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"mlflow" in command:
            return True
    return False


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_pgid(pid) == pgid and not _zombie(pid) for pid in _pids())


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
