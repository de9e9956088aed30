"""Kafka security on a real broker that authenticates (SASL PLAIN and SCRAM) and encrypts (TLS),
and secrets kept out of the logs.

A second local broker has SASL_PLAINTEXT, SSL and SASL_SSL listeners, one user, and a
certificate signed by a throwaway CA (made with openssl; the clients trust it through
``kafka.ssl_cafile`` and check that it names 127.0.0.1). For each protocol and mechanism: the
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
from kafka.errors import KafkaError

from driftline.config import load_config
from driftline.runtime.localkafka import LocalKafka
from driftline.runtime.topics import kafka_client_options
from driftline.sdk.client import PredictionLogger
from kafka import KafkaProducer
from tests.conftest import TEST_KAFKA_PORT, WorkerProcess, scrape
from tests.streams import events, model_config, write_profile

pytestmark = pytest.mark.kafka

PASSWORD = "pl4nted-kafka-s3cr3t"  # planted: grepped for in the logs below
USER = "driftline"


def make_certificates(tls: Path) -> None:
    """A CA, and a broker certificate it signed for 127.0.0.1: broker.pem (key, chain), ca.pem."""
    tls.mkdir(parents=True, exist_ok=True)

    def openssl(command: str) -> None:
        subprocess.run(["openssl", *command.split()], cwd=tls, check=True, capture_output=True)

    (tls / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem"
    )
    openssl("req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout broker.key -out broker.csr")
    openssl(
        "x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile san.ext -out broker.crt"
    )
    # Kafka's PEM keystore: the PKCS#8 key, then the certificate chain
    openssl("pkcs8 -topk8 -nocrypt -in broker.key -out broker.p8")
    chain = [(tls / name).read_text() for name in ("broker.p8", "broker.crt", "ca.pem")]
    (tls / "broker.pem").write_text("".join(chain))


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    tls = tmp_path_factory.mktemp("tls")
    make_certificates(tls)
    kafka = LocalKafka(
        port=TEST_KAFKA_PORT + 4,
        controller_port=TEST_KAFKA_PORT + 5,
        sasl_port=TEST_KAFKA_PORT + 6,
        sasl_users=((USER, PASSWORD),),
        tls_dir=tls,
        ssl_port=TEST_KAFKA_PORT + 7,
        sasl_ssl_port=TEST_KAFKA_PORT + 10,
        name="test-sasl",
    )
    kafka.start(fresh=True)
    try:
        yield kafka
    finally:
        kafka.stop()


def security(
    mechanism: str | None,
    protocol: str = "SASL_PLAINTEXT",
    kafka: LocalKafka | None = None,
    password_env: str = "TEST_KAFKA_PASSWORD",
) -> dict[str, Any]:
    settings: dict[str, Any] = {"security_protocol": protocol}
    if mechanism is not None:
        settings.update(sasl_mechanism=mechanism, sasl_username=USER)
        settings["sasl_password_env"] = password_env
    if protocol.endswith("SSL"):
        assert kafka is not None and kafka.tls_dir is not None
        settings["ssl_cafile"] = str(kafka.tls_dir / "ca.pem")
    return settings


def listener(kafka: LocalKafka, protocol: str) -> str:
    return {
        "SASL_PLAINTEXT": kafka.sasl_bootstrap_servers,
        "SSL": kafka.ssl_bootstrap_servers,
        "SASL_SSL": kafka.sasl_ssl_bootstrap_servers,
    }[protocol]


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ("SSL", None),
        ("SASL_SSL", "PLAIN"),
        ("SASL_SSL", "SCRAM-SHA-512"),
    ],
)
def test_worker_sdk_and_cli_connect_securely_and_never_log_the_password(
    tmp_path: Path, sasl_kafka: LocalKafka, protocol: str, mechanism: str | None
) -> None:
    env = {"TEST_KAFKA_PASSWORD": PASSWORD}
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(
        tmp_path,
        listener(sasl_kafka, protocol),
        {"m1": model_config(profile)},
        env=env,
        kafka=security(mechanism, protocol, sasl_kafka),
    )
    worker.loglevel = "debug"  # the most a log can say
    config = load_config(worker.path, env=env)

    # The CLI: publish the reference profile through the secured listener.
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


def test_a_certificate_from_an_untrusted_ca_is_refused(
    tmp_path: Path, sasl_kafka: LocalKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """TLS verifies the broker: a client trusting another CA does not connect at all."""
    other = tmp_path / "other-ca"
    make_certificates(other)  # same names, a different CA
    options = kafka_client_options(
        load_config_from(tmp_path, sasl_kafka, {"ssl_cafile": str(other / "ca.pem")})
    )
    with pytest.raises(KafkaError):
        send_one(options)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text  # refused for the certificate
    trusted = kafka_client_options(load_config_from(tmp_path, sasl_kafka, {}))
    send_one(trusted)  # the control: the same settings with the right CA get through


def send_one(options: dict[str, Any]) -> None:
    producer = KafkaProducer(**options, max_block_ms=10_000)
    try:
        producer.send("tls-check", b"x").get(timeout=10)
    finally:
        producer.close(timeout=5)


def load_config_from(tmp: Path, kafka: LocalKafka, override: dict[str, Any]) -> Any:
    settings = {**security(None, "SSL", kafka), **override}
    profile = write_profile(tmp / "m1.json")
    worker = WorkerProcess(
        tmp, kafka.ssl_bootstrap_servers, {"m1": model_config(profile)}, kafka=settings
    )
    return load_config(worker.path).kafka
