"""A real HTTP server on loopback standing in for Slack's incoming-webhook endpoint.

It records every request it gets and answers from a script, one answer per request, then 200:
``200``, ``(429, retry_after)``, ``500``, ``400`` or ``("hang", seconds)`` (a 504 sent only after
sleeping, so the client's timeout fires first; the message counts as not delivered). Setting
``outage`` makes it answer 503 to everything, as during an outage; ``down()`` closes its port
(connections refused, as when Slack is unreachable) until ``up()`` opens the same port again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

Answer = int | tuple[int, float] | tuple[str, float]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


class FakeSlack:
    # A path shaped like Slack's: the token in it is what makes the URL a secret.
    PATH = "/services/T0DRIFT/B0LINE/s3cr3t-t0ken-do-not-log"

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[Answer] = []
        self.outage = False
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with fake.lock:
                    answer: Answer = (
                        503 if fake.outage else (fake.script.pop(0) if fake.script else 200)
                    )
                extra: dict[str, str] = {}
                if isinstance(answer, tuple) and answer[0] == "hang":
                    # a gateway that never got the message through, answering too late
                    time.sleep(float(answer[1]))
                    status = 504
                elif isinstance(answer, tuple):
                    status = int(answer[0])
                    extra["Retry-After"] = str(int(answer[1]))
                else:
                    status = int(answer)
                with fake.lock:
                    fake.received.append(
                        Received(self.path, dict(self.headers), body, status, time.monotonic())
                    )
                reply = b"ok" if status == 200 else b"no"
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a hang longer than its timeout)

            def log_message(self, *args: Any) -> None:
                pass

        self.handler = Handler
        self.port = 0
        self.up()

    def up(self) -> None:
        """Listen (again, on the same port after ``down``) and serve."""
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.listening = True

    def down(self) -> None:
        """Stop listening: clients get connection refused."""
        if self.listening:  # shutdown() of a server that is not serving would wait forever
            self.server.shutdown()
            self.server.server_close()
            self.listening = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.PATH}"

    def delivered(self) -> list[Received]:
        """Requests answered with success: what Slack would have shown."""
        with self.lock:
            return [r for r in self.received if r.answered == 200]

    def wait_delivered(self, n: int, timeout: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered()
            if len(got) >= n:
                return got
            time.sleep(0.1)
        raise AssertionError(f"{len(self.delivered())} of {n} delivered: {self.received}")


@contextmanager
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack()
    try:
        yield server
    finally:
        server.down()
