"""Stand-ins for the supervisor's tests: a scoring server's process that is no process, a router that records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.server import ScoringServer

# what uvicorn logs when it cannot bind its port
PORT_IN_USE = "ERROR: [Errno 98] error while attempting to bind on address ('127.0.0.1', 7100): address already in use"


@dataclass
class FakeChild:
    """Answers like `supervisor.processes.Child` (or `Adopted`); `stop` and `tie` only record that they were called."""

    name: str = "scoring-0"
    log: Path = Path("/nonexistent.log")
    alive: bool = True
    returncode: int | None = None
    pid: int = 0
    stopped: bool = False
    tied: bool = False
    log_text: str = ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 15.0) -> None:
        self.stopped, self.alive = True, False

    def tie(self) -> None:
        self.tied = True


def fake_server(
    version: str, port: int = 1, build_run_id: str | None = None, model_dir: Path = Path("/nonexistent")
) -> ScoringServer:
    return ScoringServer(version, f"http://127.0.0.1:{port}", FakeChild(), model_dir, build_run_id)  # type: ignore[arg-type]


@dataclass
class FakeRoute:
    """The requests sent to one server; `drain` waits until `release` is set."""

    url: str
    release: asyncio.Event = field(default_factory=asyncio.Event)
    drained: bool = False

    async def drain(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self.release.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            self.drained = True
        return True


@dataclass
class FakeRouter:
    """Records each switch; the route in use starts as the gateway's placeholder. With `hold`, a new route's
    requests stay in flight until its `release` is set."""

    route: FakeRoute = field(default_factory=lambda: FakeRoute("placeholder"))
    switches: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    hold: bool = False
    challengers: list[tuple[str, str, str, str | None]] = field(default_factory=list)  # each offer_challenger
    challenger: FakeRoute | None = None  # where canary and shadow requests would go now

    def switch(self, url: str, name: str, version: str, build_run_id: str | None) -> FakeRoute:
        self.switches.append((url, name, version, build_run_id))
        previous, self.route = self.route, FakeRoute(url)
        if not self.hold:
            self.route.release.set()
        return previous

    def offer_challenger(self, url: str, name: str, version: str, build_run_id: str | None) -> None:
        self.challengers.append((url, name, version, build_run_id))
        self.challenger = FakeRoute(url)
        self.challenger.release.set()

    def withdraw_challenger(self) -> FakeRoute | None:
        challenger, self.challenger = self.challenger, None
        return challenger
