"""The gateway's HTTP client against small real servers on loopback: keep-alive, chunked bodies, stale
connections, refusal, slowness, garbage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.upstream import UpstreamClosed, UpstreamDropped, UpstreamPool, UpstreamTimeout, UpstreamUnavailable
from tests.processes import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return await reader.readexactly(length)


def response(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def serve(handler: Handler, scenario: Callable[[UpstreamPool], Awaitable[None]], **pool: float) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = UpstreamPool(f"http://127.0.0.1:{port}", **pool)
    try:
        await scenario(upstream)
    finally:
        await upstream.close()
        server.close()


def test_echo_over_one_kept_alive_connection() -> None:
    connections = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while True:
            try:
                body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(response(body))

    async def scenario(upstream: UpstreamPool) -> None:
        for i in range(5):
            assert await upstream.post("/x", f"hello {i}".encode()) == (200, f"hello {i}".encode())

    asyncio.run(serve(echo, scenario))
    assert len(connections) == 1


def test_chunked_body() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    async def scenario(upstream: UpstreamPool) -> None:
        assert await upstream.post("/x", b"{}") == (200, b"hello world")

    asyncio.run(serve(chunked, scenario))


def test_a_connection_closed_between_requests_is_retried_on_a_fresh_one() -> None:
    async def one_shot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(b"ok"))  # no "Connection: close", yet it closes: a stale keep-alive connection
        await writer.drain()
        writer.close()

    async def scenario(upstream: UpstreamPool) -> None:
        for _ in range(20):  # at once: the next request may be sent before the close is seen
            assert await upstream.post("/x", b"{}") == (200, b"ok")

    asyncio.run(serve(one_shot, scenario))


def test_refused_is_unavailable() -> None:
    async def scenario() -> None:
        upstream = UpstreamPool(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(UpstreamUnavailable):
            await upstream.post("/x", b"{}")

    asyncio.run(scenario())


def test_slow_answer_times_out() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(2)

    async def scenario(upstream: UpstreamPool) -> None:
        with pytest.raises(UpstreamTimeout):
            await upstream.post("/x", b"{}")

    asyncio.run(serve(slow, scenario, timeout_s=0.3))


def test_garbage_is_dropped() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario(upstream: UpstreamPool) -> None:
        with pytest.raises(UpstreamDropped):
            await upstream.post("/x", b"{}")

    asyncio.run(serve(garbage, scenario))


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="http://"):
        UpstreamPool("https://example.invalid")


def test_closed_without_an_answer_is_unavailable_not_an_error() -> None:
    """A server that dies mid-request (here: closes after reading) is unavailable (503), not failing (502)."""

    async def vanish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async def scenario(upstream: UpstreamPool) -> None:
        with pytest.raises(UpstreamClosed):
            await upstream.post("/x", b"{}")

    asyncio.run(serve(vanish, scenario))


def test_an_answer_cut_off_midway_is_unavailable_not_an_error() -> None:
    """A server killed while writing its answer (the body shorter than its Content-Length) went away: 503, not 502."""

    async def die_midway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"predic')
        await writer.drain()
        writer.transport.abort()

    async def scenario(upstream: UpstreamPool) -> None:
        with pytest.raises(UpstreamClosed):
            await upstream.post("/x", b"{}")

    asyncio.run(serve(die_midway, scenario))


def test_an_answer_cut_off_midway_is_asked_again_on_a_fresh_connection() -> None:
    answers = iter([b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"predic', response(b'{"ok": true}')])

    async def die_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(next(answers))
        await writer.drain()
        writer.transport.abort()

    async def scenario(upstream: UpstreamPool) -> None:
        assert await upstream.post("/x", b"{}") == (200, b'{"ok": true}')

    asyncio.run(serve(die_once, scenario))
