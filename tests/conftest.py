"""Shared fixtures: the real local Kafka broker, and a driftline worker process on it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.observability.metrics import scrape_total
from driftline.runtime.localkafka import LocalKafka
from kafka import KafkaConsumer

TEST_KAFKA_PORT = 29092


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real broker: $KAFKA_BOOTSTRAP_SERVERS if set, else a fresh local KRaft node."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    kafka = LocalKafka(port=TEST_KAFKA_PORT, controller_port=TEST_KAFKA_PORT + 1, name="test")
    kafka.start(fresh=True)
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


scrape = scrape_total  # the tests watch workers as the demo does


class WorkerProcess:
    """A ``driftline worker`` subprocess with its own topics and consumer group."""

    def __init__(
        self,
        tmp: Path,
        bootstrap: str,
        models: dict[str, Any],
        alerts: dict[str, Any] | None = None,
        notifications: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        kafka: dict[str, Any] | None = None,
        partitions: int = 2,
        **worker: Any,
    ) -> None:
        """``kafka``: more of the config's kafka section (security); ``worker``: its worker
        section."""
        run = uuid.uuid4().hex[:8]
        self.metrics_port = free_port()
        self.config = {
            "kafka": {"bootstrap_servers": bootstrap, **(kafka or {})},
            "topics": {"prefix": f"dltest-{run}.", "partitions": partitions},
            "worker": {
                "app_id": f"dltest-{run}",
                "metrics_port": self.metrics_port,
                "data_dir": str(tmp / "worker"),
                **worker,
            },
            "alerts": alerts or {"window_events": 500, "resolve_after_windows": 3},
            "models": models,
        }
        if notifications:
            self.config["notifications"] = notifications
        self.env = env or {}
        self.path = tmp / "config.yaml"
        self.path.write_text(yaml.safe_dump(self.config))
        self.log_path = tmp / "worker.log"
        self.bootstrap = bootstrap
        self.prefix = self.config["topics"]["prefix"]
        self.app_id = self.config["worker"]["app_id"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.loglevel = "info"
        self.prelude = ""

    def peer(self, tmp: Path) -> WorkerProcess:
        """Another worker of the same app (consumer group, topics), with its own metrics port
        and data directory: to see partitions and their state move between processes."""
        other = WorkerProcess.__new__(WorkerProcess)
        other.__dict__.update(self.__dict__)
        other.metrics_port = free_port()
        other.config = {
            **self.config,
            "worker": {
                **self.config["worker"],
                "metrics_port": other.metrics_port,
                "data_dir": str(tmp / "worker"),
            },
        }
        tmp.mkdir(parents=True, exist_ok=True)
        other.path = tmp / "config.yaml"
        other.path.write_text(yaml.safe_dump(other.config))
        other.log_path = tmp / "worker.log"
        other.proc = None
        return other

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def start(self) -> None:
        self.launch()
        self.wait_up()

    def launch(self) -> None:
        """Start the process without waiting for it (to start several at once)."""
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        env.update(self.env)
        log = self.log_path.open("ab")
        args = ["worker", "--config", str(self.path), "--loglevel", self.loglevel]
        # ``prelude``: Python run in the worker process before driftline (to take a codec away)
        run = "from driftline.cli.main import main\nraise SystemExit(main())"
        start = ["-c", f"{self.prelude}\n{run}"] if self.prelude else ["-m", "driftline"]
        self.proc = subprocess.Popen(
            [sys.executable, *start, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_up(self) -> None:
        """Until the worker serves its metrics."""
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker died: {self.log_tail()}"
            if "driftline_events_processed_total" in self._metrics_text():
                return
            time.sleep(0.2)
        raise AssertionError(f"worker metrics never came up: {self.log_tail()}")

    def _metrics_text(self) -> str:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1
            ) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""

    def processed(self) -> float:
        return scrape(self.metrics_port, "driftline_events_processed_total")

    def wait_processed(self, n: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            if self.processed() >= n:
                return
            time.sleep(0.25)
        raise AssertionError(f"processed {self.processed()} of {n}: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(45)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def stop_counting(self) -> float:
        """Stop (SIGTERM); the events it processed, read until it exited: a run it finishes
        while stopping counts too."""
        assert self.proc is not None
        processed = self.processed()
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 45
        while self.proc.poll() is None and time.monotonic() < deadline:
            processed = max(processed, self.processed())
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        return processed

    def log_tail(self, n: int = 40) -> str:
        lines = (
            self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        )
        return "\n".join(lines[-n:])


def read_topic(
    bootstrap: str,
    topic: str,
    timeout_ms: int = 3000,
    min_messages: int = 0,
    wait: float = 30,
    isolation_level: str = "read_uncommitted",
) -> list[Any]:
    """All messages of a topic from the start (waiting up to ``wait`` s for ``min_messages``)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=timeout_ms,
        group_id=None,
        isolation_level=isolation_level,
    )
    messages: list[Any] = []
    deadline = time.monotonic() + wait
    try:
        while True:
            messages.extend(consumer)
            if len(messages) >= min_messages or time.monotonic() > deadline:
                return messages
    finally:
        consumer.close()
