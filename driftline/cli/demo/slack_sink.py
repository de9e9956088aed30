"""A stand-in for Slack's incoming webhook on loopback, so the demo shows what Slack would get.

It accepts every POST, keeps the JSON body and prints the message's header line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class SlackSink:
    def __init__(self, on_message: Callable[[dict[str, Any]], None]) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the http.server API names it
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    message = orjson.loads(body)
                except orjson.JSONDecodeError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with sink.lock:
                    sink.messages.append(message)
                on_message(message)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/DEMO/WEBHOOK/token"

    def __enter__(self) -> SlackSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
