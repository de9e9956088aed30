"""The demo's pages: the status page while it runs, and at the end the report of each model
(from the records the worker published and the events the demo sent) and the status page
as it stood."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import IO, Any

import orjson

from driftline.config import Config
from driftline.report.build import build_reports, file_name
from driftline.report.fleet import render_fleet
from driftline.runtime.profiles import published_profiles
from driftline.runtime.status import StatusPage, serve
from driftline.runtime.topics import dump_topic

STATUS_PORT = 8900  # the status page's usual port; any free one if it is taken


class EventsFile:
    """The prediction messages the demo sends, as topic messages in a JSON-lines file (the
    report's recent distributions come from it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[bytes] = path.open("wb")
        self.pending: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def add(self, model_id: str, version: str, event: dict[str, Any]) -> None:
        self.pending.setdefault((model_id, version), []).append(event)

    def flush(self) -> None:
        """One row batch per model for what was added since the last flush."""
        for (model_id, version), events in self.pending.items():
            doc = {"model_id": model_id, "model_version": version, "events": events}
            self.handle.write(orjson.dumps(doc) + b"\n")
        self.pending = {}

    def close(self) -> None:
        self.flush()
        self.handle.close()


def status_port() -> int:
    """The status page's usual port if it is free, else any free one."""
    for port in (STATUS_PORT, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


class LiveStatus:
    """The status page on loopback, served from a thread."""

    def __init__(self, config: Config, port: int) -> None:
        self.server, self.page = serve(config, "127.0.0.1", port)
        self.url = f"http://127.0.0.1:{port}/"
        threading.Thread(target=self.server.serve_forever, name="status", daemon=True).start()

    def stop(self) -> None:
        self.page.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        if self.page.reader is not None:  # its consumer closed before the broker stops
            self.page.reader.join(5)


def write_pages(config: Config, workdir: Path, events: Path, status: StatusPage) -> list[Path]:
    """The reports of the run and the status page as it stood at the end."""
    topics = config.topics
    files = {}
    for name, topic in (
        ("alerts", topics.alerts),
        ("feature-windows", topics.feature_windows),
        ("performance-windows", topics.performance_windows),
    ):
        files[name] = workdir / f"{name}.jsonl"
        dump_topic(config.kafka, topic, files[name])
    reports = build_reports(
        config,
        workdir / "report",
        alerts=files["alerts"],
        windows=files["performance-windows"],
        events=events,
        history=files["feature-windows"],
        published=published_profiles(config),
    )
    snapshot = workdir / "report" / "status.html"
    lag = status.lag()
    with status.lock:  # the page as it stood, its models linked to their reports
        html = render_fleet(status.fleet, lag, refresh=None, link=lambda m: f"{file_name(m)}.html")
    snapshot.write_text(html)
    return [*reports, snapshot]
