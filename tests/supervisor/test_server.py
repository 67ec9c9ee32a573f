"""A scoring server's start-up checks against answers made up in process (httpx.MockTransport): what counts as
ready and warm, and how a broken version is described."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from supervisor.server import LaunchFailed, PortTaken, check_identity, wait_ready, warm_up
from tests.supervisor.fakes import PORT_IN_USE, fake_server

INFO = {"status": "ok", "n_films": 500, "build_run_id": "run-1", "model_name": "movie-recommender"}


def scoring(answer: Callable[[str, dict[str, Any]], httpx.Response]) -> httpx.AsyncClient:
    """A client whose /invocations answers `answer(mode, row)` and whose /ping answers 200."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ping":
            return httpx.Response(200, text="\n")
        body = json.loads(request.content)
        return answer(body["params"]["mode"], body["inputs"][0])

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def predictions(record: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"predictions": [record]})


def healthy(mode: str, row: dict[str, Any]) -> httpx.Response:
    if mode == "info":
        return predictions(INFO)
    if mode == "search":
        return predictions({"status": "ok", "results": [{"title": "Heat"}]})
    return predictions({"status": "ok", "recommendations": [{"title": "Ronin"}]})


def warm(answer: Callable[[str, dict[str, Any]], httpx.Response]) -> str | None:
    async def scenario() -> str | None:
        async with scoring(answer) as http:
            return await warm_up(http, fake_server("3"), time.monotonic() + 5)

    return asyncio.run(scenario())


def test_a_healthy_model_is_warmed_through_info_search_and_a_recommendation() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    def recording(mode: str, row: dict[str, Any]) -> httpx.Response:
        asked.append((mode, row))
        return healthy(mode, row)

    assert warm(recording) == "run-1"
    assert asked == [
        ("info", {}),
        ("search", {"title": "the", "top_n": 1}),
        ("recommend", {"title": "Heat", "top_n": 5}),
    ]


def test_a_model_that_fails_is_described_by_its_own_exception() -> None:
    def failing(mode: str, row: dict[str, Any]) -> httpx.Response:
        trace = "Traceback (most recent call last):\n  ...\nRuntimeError: this version fails every prediction\n"
        return httpx.Response(400, json={"error_code": "BAD_REQUEST", "message": "failed", "stack_trace": trace})

    with pytest.raises(LaunchFailed, match="this version fails every prediction"):
        warm(failing)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda mode, row: predictions({"status": "ok", "n_films": 0}),  # an empty catalog
        lambda mode, row: httpx.Response(200, json={"predictions": []}),  # not one record per query
        lambda mode, row: httpx.Response(200, text="not json"),
        lambda mode, row: predictions(INFO) if mode == "info" else predictions({"status": "invalid"}),
    ],
)
def test_a_model_that_answers_wrongly_is_not_warm(wrong: Callable[[str, dict[str, Any]], httpx.Response]) -> None:
    with pytest.raises(LaunchFailed):
        warm(wrong)


def test_a_server_that_exits_while_starting_fails_with_the_error_its_log_names() -> None:
    server = fake_server("3")
    server.child.alive, server.child.returncode = False, 1  # type: ignore[misc]
    server.child.log_text = "RuntimeError: this version cannot load\nException: Command 'uvicorn' returned 1\n"  # type: ignore[attr-defined]

    async def scenario() -> None:
        async with scoring(healthy) as http:
            await wait_ready(http, server, time.monotonic() + 5)

    with pytest.raises(LaunchFailed, match="exited with 1: RuntimeError: this version cannot load"):
        asyncio.run(scenario())


def test_a_server_that_never_answers_ping_fails_at_the_deadline() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
            await wait_ready(http, fake_server("3"), time.monotonic() + 0.6)

    started = time.monotonic()
    with pytest.raises(LaunchFailed, match="no answer to /ping"):
        asyncio.run(scenario())
    assert time.monotonic() - started < 3


def test_a_server_that_exits_because_its_port_was_taken_says_so() -> None:
    server = fake_server("3", port=7100)
    server.child.alive, server.child.returncode = False, 1  # type: ignore[misc]
    server.child.log_text = f"INFO: Started server process\n{PORT_IN_USE}\n"  # type: ignore[attr-defined]

    async def scenario() -> None:
        async with scoring(healthy) as http:
            await wait_ready(http, server, time.monotonic() + 5)

    with pytest.raises(PortTaken, match="port 7100 was taken"):
        asyncio.run(scenario())


def test_a_model_is_checked_against_the_build_the_registry_names() -> None:
    server = fake_server("3", build_run_id="run-1")
    check_identity(server, "run-1")
    check_identity(server, None)  # the registry names no build: nothing to compare with
    with pytest.raises(LaunchFailed, match="names build run 'run-1'; version 3 is build run 'run-2'"):
        check_identity(server, "run-2")
    with pytest.raises(LaunchFailed, match="names build run None"):
        check_identity(fake_server("3"), "run-2")
