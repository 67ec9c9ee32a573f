"""A lean HTTP/1.1 client for the one upstream the gateway talks to: pooled keep-alive connections, one write per
request, POST and GET with JSON bodies to one loopback host, nothing else.

Kept over httpx and aiohttp: its sequential p50 is over 20% lower (`python -m benchmarks.upstream_clients`).
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024


class UpstreamError(Exception):
    """Base of the transport outcomes below."""


class UpstreamUnavailable(UpstreamError):
    """Nothing accepts connections at the upstream address (or connecting timed out)."""


class UpstreamTimeout(UpstreamError):
    """The upstream accepted the request but did not answer in time."""


class UpstreamDropped(UpstreamError):
    """The upstream answered something that is not HTTP."""


class UpstreamClosed(UpstreamUnavailable):
    """The upstream closed the connection before answering, on a fresh connection too: it went away (a crash, a
    restart), which is being unavailable, not answering wrongly."""


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class UpstreamPool:
    """Keep-alive connections to one `http://host:port` base URL; at most `max_connections` open at once."""

    def __init__(self, url: str, max_connections: int = 64, connect_timeout_s: float = 1.0, timeout_s: float = 10.0):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {url!r}")
        self.url = url.rstrip("/")
        self._host, self._port = parts.hostname, parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout_s
        self._timeout = timeout_s
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.in_flight = 0

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {self._prefix}{path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return await self._exchange(head.encode() + body)

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self._exchange(
            f"GET {self._prefix}{path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n\r\n".encode()
        )

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request; a pooled connection the upstream closed meanwhile is retried once on a fresh one
        (a prediction has no side effects, so repeating it is safe)."""
        self.in_flight += 1  # counted before waiting for a slot: draining waits for queued requests too
        try:
            async with self._slots:
                for attempt in (1, 2):
                    connection, reused = await self._connection()
                    try:
                        async with asyncio.timeout(self._timeout):  # no task per request, unlike wait_for
                            status, body, keep = await _send(connection, request)
                    except TimeoutError as error:
                        connection[1].close()
                        raise UpstreamTimeout() from error
                    except (ConnectionError, asyncio.IncompleteReadError) as error:
                        connection[1].close()
                        if reused and attempt == 1:
                            continue
                        raise UpstreamClosed(repr(error)) from error
                    except (asyncio.LimitOverrunError, ValueError) as error:
                        connection[1].close()
                        raise UpstreamDropped(repr(error)) from error
                    if keep:
                        self._idle.append(connection)
                    else:
                        connection[1].close()
                    return status, body
                raise AssertionError("unreachable")
        finally:
            self.in_flight -= 1

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no request is in flight (True), or `timeout_s` passed (False); then close idle connections."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await self.close()
        return not self.in_flight

    async def _connection(self) -> tuple[Connection, bool]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return (reader, writer), True
            writer.close()
        try:
            connection = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port, limit=MAX_HEADER_BYTES), self._connect_timeout
            )
        except (OSError, TimeoutError) as error:
            raise UpstreamUnavailable(repr(error)) from error
        return connection, False


async def _send(connection: Connection, request: bytes) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection may be reused)."""
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip().lower()
    if "chunked" in headers.get("transfer-encoding", ""):
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    keep = version == "HTTP/1.1" and headers.get("connection") != "close"
    return int(status), body, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            with contextlib.suppress(asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
