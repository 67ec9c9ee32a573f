"""The gateway's scoring client against small real HTTP servers on loopback: records as JSON text (param `format`)
and, from a model version that predates that param, as objects; a switch of server with requests in flight."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.errors import ScoringFailed, ScoringUnavailable
from gateway.schemas import RecommendationRequest
from gateway.scoring import Backend, ScoringClient, invoke_one
from gateway.settings import Settings
from gateway.upstream import UpstreamPool
from tests.gateway.test_upstream import read_request, response

RECORD = {"status": "ok", "reason": None, "recommendations": [{"id": 1, "title": "Été", "score": 0.5}]}


def exchange(answer: Any, n: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Backend]:
    """Send `n` queries through one Backend to a server that answers `answer(params)` as the prediction;
    returns the records, the params the server received, and the backend."""
    received: list[dict[str, Any]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            params = json.loads(body)["params"]
            received.append(params)
            writer.write(response(json.dumps({"predictions": [answer(params)]}).encode()))

    async def scenario() -> tuple[list[dict[str, Any]], Backend]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        backend = Backend(UpstreamPool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"))
        try:
            records = [await invoke_one(backend, {"title": "x"}, "recommend") for _ in range(n)]
            return records, backend
        finally:
            await backend.upstream.close()
            server.close()

    records, backend = asyncio.run(scenario())
    return records, received, backend


def current_model(params: dict[str, Any]) -> Any:
    return json.dumps(RECORD, ensure_ascii=False) if params.get("format") == "json" else RECORD


def test_records_are_asked_for_and_read_as_json_text() -> None:
    records, received, backend = exchange(current_model)
    assert records == [RECORD] * 3
    assert received == [{"mode": "recommend", "format": "json"}] * 3
    assert backend.records_as_text


def test_a_model_that_predates_the_format_param_is_asked_for_objects_after_its_first_answer() -> None:
    records, received, backend = exchange(lambda params: RECORD)  # MLflow drops params a model does not declare
    assert records == [RECORD] * 3
    assert received == [{"mode": "recommend", "format": "json"}, {"mode": "recommend"}, {"mode": "recommend"}]
    assert not backend.records_as_text


@pytest.mark.parametrize("answer", ["{not json", "[1, 2]", 42, None])
def test_a_record_that_is_neither_an_object_nor_its_text_is_a_scoring_failure(answer: Any) -> None:
    with pytest.raises(ScoringFailed):
        exchange(lambda params: answer, n=1)


def test_a_switch_lets_requests_in_flight_finish_where_they_started_and_drain_waits_for_them() -> None:
    answer = response(json.dumps({"predictions": [json.dumps(RECORD)]}).encode())
    release = asyncio.Event()

    def server(wait: bool) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError):
                while True:
                    await read_request(reader)
                    if wait:
                        await release.wait()
                    writer.write(answer)

        return handle

    async def scenario() -> None:
        old = await asyncio.start_server(server(wait=True), "127.0.0.1", 0)
        new = await asyncio.start_server(server(wait=False), "127.0.0.1", 0)
        scoring = ScoringClient(Settings(), url_of(old), pinned=True)
        request = RecommendationRequest(title="Heat")
        try:
            in_flight = asyncio.create_task(scoring.recommend(request))
            await asyncio.sleep(0.05)
            previous = scoring.switch(url_of(new), "movie-recommender", "2", "run-2")
            assert (await scoring.recommend(request))[1].version == "2"  # new requests go to the new server
            draining = asyncio.create_task(previous.drain(5))
            await asyncio.sleep(0.05)
            assert not draining.done()
            release.set()
            record, identity = await in_flight
            assert record == RECORD and identity.version is None  # answered, and labelled, where it started
            assert await draining is True
        finally:
            await scoring.close()
            old.close()
            new.close()

    asyncio.run(scenario())


def test_a_drain_that_times_out_says_so_and_gives_up_the_request() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async def scenario() -> None:
        server = await asyncio.start_server(hang, "127.0.0.1", 0)
        scoring = ScoringClient(Settings(), url_of(server), pinned=True)
        try:
            in_flight = asyncio.create_task(scoring.recommend(RecommendationRequest(title="Heat")))
            await asyncio.sleep(0.05)
            assert await scoring.backend.drain(0.1) is False
            with pytest.raises(ScoringUnavailable):
                await in_flight
        finally:
            await scoring.close()
            server.close()

    asyncio.run(scenario())


def url_of(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
