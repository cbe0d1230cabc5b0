"""A real HTTP server for tests of the operator's outbound calls (analysis web metrics,
notification webhooks): it answers each path as the test says and records every request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, bytes]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    """Answers a request with the first of ``queue`` if any, else ``answers`` for its path
    (``default`` for others), after ``delays`` for its path; ``requests`` holds what came."""

    url: str = ""
    answers: dict[str, Answer] = field(default_factory=dict)
    default: Answer = (200, b"{}")
    queue: list[Answer] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def set(self, path: str, body: Any, status: int = 200) -> None:
        self.answers[path] = (status, json.dumps(body).encode())

    def answer(self, request: Request) -> Answer:
        time.sleep(self.delays.get(request.path, 0))
        if self.queue:
            return self.queue.pop(0)
        return self.answers.get(request.path, self.default)


@contextmanager
def http_sink(host: str = "127.0.0.1") -> Iterator[Sink]:
    sink = Sink()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, self.path, dict(self.headers), self.rfile.read(length))
            sink.requests.append(request)
            status, data = sink.answer(request)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink.url = f"http://{host}:{server.server_address[1]}"
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
