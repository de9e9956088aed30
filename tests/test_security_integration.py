"""Kafka security on a real broker that authenticates (SASL PLAIN and SCRAM), and secrets kept
out of the logs.

A second local broker has a SASL_PLAINTEXT listener with one user. For each mechanism: the
worker (Faust), the SDK (``PredictionLogger``) and the CLI (``driftline baseline --publish``)
connect with the config's settings, the password coming from the environment; events logged
through the SDK are processed, alerts reach the alerts topic. A worker given the wrong password
fails to get anywhere and says so. The password is planted: no log of any of these runs (the
worker at debug level included) and no metrics page shows it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.config import load_config
from driftline.localkafka import LocalKafka
from driftline.stream.client import PredictionLogger
from driftline.stream.topics import kafka_client_options
from tests.conftest import TEST_KAFKA_PORT, WorkerProcess, scrape
from tests.streams import events, model_config, write_profile

pytestmark = pytest.mark.kafka

PASSWORD = "pl4nted-kafka-s3cr3t"  # planted: grepped for in the logs below
USER = "driftline"


@pytest.fixture(scope="module")
def sasl_kafka() -> Iterator[LocalKafka]:
    kafka = LocalKafka(
        port=TEST_KAFKA_PORT + 4,
        controller_port=TEST_KAFKA_PORT + 5,
        sasl_port=TEST_KAFKA_PORT + 6,
        sasl_users=((USER, PASSWORD),),
        name="test-sasl",
    )
    kafka.start(fresh=True)
    try:
        yield kafka
    finally:
        kafka.stop()


def security(mechanism: str, password_env: str = "TEST_KAFKA_PASSWORD") -> dict[str, Any]:
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_username": USER,
        "sasl_password_env": password_env,
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_worker_sdk_and_cli_authenticate_and_never_log_the_password(
    tmp_path: Path, sasl_kafka: LocalKafka, mechanism: str
) -> None:
    env = {"TEST_KAFKA_PASSWORD": PASSWORD}
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(
        tmp_path,
        sasl_kafka.sasl_bootstrap_servers,
        {"m1": model_config(profile)},
        env=env,
        kafka=security(mechanism),
    )
    worker.loglevel = "debug"  # the most a log can say
    config = load_config(worker.path, env=env)

    # The CLI: publish the reference profile through the authenticating listener.
    data, out = write_data(tmp_path), tmp_path / "m1.published.json"
    cli = subprocess.run(
        [
            *(sys.executable, "-m", "driftline", "baseline", "--config", str(worker.path)),
            *("--model", "m1", "--data", str(data), "--out", str(out), "--publish"),
        ],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "published to the compacted topic" in cli.stdout

    worker.start()
    try:
        # The SDK, with the same options every driftline client builds from the config.
        logger = PredictionLogger(
            "m1", "1", topic=worker.topic("predictions"), **kafka_client_options(config.kafka)
        )
        rng = np.random.default_rng(3)
        rows = events(2_000, rng) + events(1_000, rng, start=2_000, x1_shift=1.5)
        for row in rows:
            logger.log(row["prediction_id"], row["features"], row["prediction"], row["timestamp"])
        logger.close()
        worker.wait_processed(3_000, timeout=120)
        alerts = wait_for(lambda: scrape(worker.metrics_port, "driftline_alerts_total"), 60)
        metrics_text = worker._metrics_text()
    finally:
        worker.stop()
    assert alerts >= 1  # the drift in x1 alerted: the alerts topic took the worker's writes
    logs = worker.log_path.read_text(errors="replace") + cli.stdout + cli.stderr
    assert "DEBUG" in logs  # the worker did log at debug level
    assert PASSWORD not in logs and PASSWORD not in metrics_text


def test_a_wrong_password_fails_clearly_and_is_not_logged(
    tmp_path: Path, sasl_kafka: LocalKafka
) -> None:
    wrong = "wr0ng-pl4nted-s3cr3t"
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(
        tmp_path,
        sasl_kafka.sasl_bootstrap_servers,
        {"m1": model_config(profile)},
        env={"TEST_KAFKA_PASSWORD": wrong},
        kafka=security("SCRAM-SHA-256"),
    )
    worker.loglevel = "debug"
    proc = subprocess.run(
        [sys.executable, "-m", "driftline", "worker", "--config", str(worker.path)],
        env=child_env({"TEST_KAFKA_PASSWORD": wrong}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "uthentication" in output, output[-3000:]  # says why, whatever the client's casing
    assert wrong not in output


def child_env(extra: dict[str, str]) -> dict[str, str]:
    # $KAFKA_BOOTSTRAP_SERVERS would point the CLI at the plaintext test broker instead
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    return {**env, **extra}


def write_data(tmp: Path) -> Path:
    """Validation data for ``driftline baseline`` (the columns of tests.streams.events)."""
    rng = np.random.default_rng(4)
    rows = events(2_000, rng)
    path = tmp / "validation.csv"
    lines = ["x1,x2,color,prediction"]
    lines += [
        f"{r['features']['x1']},{r['features']['x2']},{r['features']['color']},{r['prediction']}"
        for r in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for(read: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    value = read()
    while not value and time.monotonic() < deadline:
        time.sleep(0.25)
        value = read()
    return float(value)
