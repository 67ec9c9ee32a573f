"""The gateway's HTTP client for its one upstream, the scoring server: an `aiohttp.ClientSession` of keep-alive
connections, with what goes wrong sorted into the outcomes the gateway answers differently (503, 504, 502)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp

JSON_HEADERS = {"Content-Type": "application/json"}
# The connection ended early: before the answer (a connection error) or partway through its body (a payload error).
CUT_OFF = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


class UpstreamError(Exception):
    """Base of the transport outcomes below."""


class UpstreamUnavailable(UpstreamError):
    """Nothing accepts connections at the upstream address (or connecting timed out)."""


class UpstreamTimeout(UpstreamError):
    """The upstream accepted the request but did not answer in time."""


class UpstreamDropped(UpstreamError):
    """The upstream answered something that is not HTTP."""


class UpstreamClosed(UpstreamUnavailable):
    """The upstream closed the connection before answering or partway through its answer, on a fresh connection
    too: it went away (a crash, a restart), which is being unavailable, not answering wrongly."""


class UpstreamPool:
    """Keep-alive connections to one `http://host:port` base URL; at most `max_connections` open at once."""

    def __init__(self, url: str, max_connections: int = 64, connect_timeout_s: float = 1.0, timeout_s: float = 10.0):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {url!r}")
        self.url = url.rstrip("/")
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None  # made in the event loop, at the first request
        self._closed = False
        self.in_flight = 0

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of a POST of JSON `body` to `path`."""
        return await self._exchange("POST", path, body)

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self._exchange("GET", path, None)

    async def close(self) -> None:
        """Close the connections; requests sent after this fail as closed (a retired server's pool is not reused)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no request is in flight (True), or `timeout_s` passed (False); then close the connections (a
        request still in flight then fails as unavailable)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.01)
        drained = not self.in_flight
        await self.close()
        return drained

    async def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        """Send one request. A kept-alive connection the upstream closed meanwhile fails it: it is sent once more,
        on a fresh connection (a prediction has no side effects, so repeating it is safe)."""
        self.in_flight += 1  # counted before waiting for a connection: draining waits for queued requests too
        try:
            try:
                return await self._send(method, path, body)
            except (TimeoutError, aiohttp.ClientConnectorError):
                raise
            except CUT_OFF:
                return await self._send(method, path, body)
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as error:
            raise UpstreamUnavailable(repr(error)) from error
        except TimeoutError as error:
            raise UpstreamTimeout() from error
        except CUT_OFF as error:
            raise UpstreamClosed(repr(error)) from error
        except aiohttp.ClientError as error:
            raise UpstreamDropped(repr(error)) from error
        finally:
            self.in_flight -= 1

    async def _send(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        headers = JSON_HEADERS if body is not None else None
        async with self._client().request(method, self.url + path, data=body, headers=headers) as response:
            return response.status, await response.read()

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise UpstreamClosed(f"the connections to {self.url} were closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),  # one trusted upstream: no cookies to keep
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session
