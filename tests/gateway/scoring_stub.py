"""A stand-in scoring server in this process (a thread): `/ping`, and `/invocations` answering each `mode` with a
record the test sets, as `mlflow models serve` of the recommender would."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from model.contract import example_film

FILM = example_film(id=7, title="Heat", year=1995, genres=["Crime"], directors=["Michael Mann"], cast=["Al Pacino"],
                    imdb_id="tt0113277", imdb_url="https://www.imdb.com/title/tt0113277/", cover_url=None)  # fmt: skip
RONIN = example_film(**{**FILM, "id": 8, "title": "Ronin", "year": 1998, "imdb_id": None, "imdb_url": None,
                         "cover_url": "https://img.example/ronin.jpg"})  # fmt: skip
RECOMMENDATION = {**RONIN, "score": 0.9, "because": {"genres": ["Crime"], "directors": [], "cast": [], "writers": []}}
OK = {
    "info": {"status": "ok", "model_name": "movie-recommender", "build_run_id": "run-1", "n_films": 2,
             "genres": [{"name": "Crime", "films": 2}, {"name": "Drama", "films": 1}]},
    "recommend": {"status": "ok", "reason": None, "query": {**FILM, "matched": "exact", "match_score": 100.0},
                  "recommendations": [RECOMMENDATION], "offset": 0, "top_n": 1},
    "search": {"status": "ok", "results": [{"id": 7, "title": "Heat", "year": 1995, "genres": [], "match_score": 100}]},
    "film": {"status": "ok", "film": {**FILM, "writers": [], "reviews": None, "rating": None, "metacritic": None,
                                      "box_office": None, "awards": None}},
}  # fmt: skip


@dataclass
class Stub:
    """What the stub answers (`records[mode]`, or `failure` as a 500 with a stack trace), how slowly, and what it
    was asked (`asked`: (mode, row) per /invocations)."""

    records: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(OK))
    failure: str | None = None
    delay_s: float = 0.0
    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def rows(self, mode: str) -> list[dict[str, Any]]:
        """The query rows it was sent with param `mode`, oldest first."""
        return [row for asked, row in self.asked if asked == mode]

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        mode, row = body["params"]["mode"], body["inputs"][0]
        self.asked.append((mode, row))
        time.sleep(self.delay_s)
        if self.failure:
            trace = f"Traceback (most recent call last):\nRuntimeError: {self.failure}"
            return 500, {"error_code": "INTERNAL_ERROR", "message": self.failure, "stack_trace": trace}
        record = self.records[mode]
        as_text = body["params"].get("format") == "json"
        return 200, {"predictions": [json.dumps(record) if as_text else record]}


@contextlib.contextmanager
def scoring_stub() -> Iterator[Stub]:
    """A running stub on a free loopback port; `stub.url` is its base URL."""
    stub = Stub()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn

        def do_GET(self) -> None:
            self._send(200, b"\n") if self.path == "/ping" else self._send(404, b"{}")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            status, answer = stub.answer(body)
            self._send(status, json.dumps(answer).encode())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
