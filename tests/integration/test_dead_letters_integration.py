"""Bad input on the real broker: each case lands in the dead-letter topic with its reason."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import orjson
import pytest

from kafka import KafkaProducer
from tests.conftest import WorkerProcess, read_topic, scrape
from tests.streams import batch_message, events, model_config, write_profile

pytestmark = pytest.mark.kafka


def test_bad_input_goes_to_dead_letter_with_reasons(tmp_path: Path, kafka_bootstrap: str) -> None:
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(
        tmp_path, kafka_bootstrap, {"m1": model_config(profile)}, max_message_bytes=64 * 1024
    )
    rng = np.random.default_rng(5)
    good = events(10, rng)
    wrong_type = dict(good[0], prediction={"not": "a number"})
    no_id = {k: v for k, v in good[1].items() if k != "prediction_id"}
    partly_bad = [*good[2:8], {**good[8], "timestamp": "yesterday"}, {"prediction_id": "p9"}]
    cases: list[tuple[str, bytes]] = [
        ("wrong_type", orjson.dumps({"model_id": "m1", "model_version": "1", **wrong_type})),
        ("schema", orjson.dumps({"model_id": "m1", "model_version": "1", **no_id})),
        ("unknown_model", batch_message("nobody", good[:3])),
        (
            "non_finite",
            b'{"model_id": "m1", "model_version": "1", "prediction_id": "n",'
            b' "timestamp": 1, "features": {"x1": NaN}, "prediction": 1}',
        ),
        ("oversize", batch_message("m1", events(600, rng))),
    ]
    worker.start()
    try:
        topic = worker.topic("predictions")
        # Undecodable bytes, sent by an independent client (kcat) as raw bytes.
        kcat = shutil.which("kcat")
        assert kcat, "kcat is installed by make setup / .ci/run"
        subprocess.run(
            [kcat, "-P", "-b", kafka_bootstrap, "-t", topic, "-k", "m1"],
            input=b"\xff\xfe not json at all",
            check=True,
            timeout=30,
        )
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for _, value in cases:
            producer.send(topic, key=b"m1", value=value)
        producer.send(topic, key=b"m1", value=batch_message("m1", partly_bad))
        producer.flush()
        producer.close()
        dead = read_topic(kafka_bootstrap, worker.topic("dead-letter"), min_messages=8)
        worker.wait_processed(6)  # the six good rows of the partly bad batch
        metric_total = scrape(worker.metrics_port, "driftline_dead_letters_total")
        assert worker.proc is not None and worker.proc.poll() is None  # never stopped
    finally:
        worker.stop()

    by_reason: dict[str, list] = {}
    for m in dead:
        headers = {k: v.decode() for k, v in m.headers}
        by_reason.setdefault(headers["reason"], []).append((headers, m))
    assert set(by_reason) == {
        "undecodable",
        "wrong_type",
        "schema",
        "unknown_model",
        "non_finite",
        "oversize",
    }
    assert len(dead) == 8 and metric_total == 8
    undecodable = by_reason["undecodable"][0][1]
    assert undecodable.value == b"\xff\xfe not json at all" and undecodable.key == b"m1"
    for reason, value in cases:  # whole messages keep their original bytes
        if reason == "oversize":  # cut at max_message_bytes, the size in a header
            ((headers, message),) = by_reason[reason]
            assert message.value == value[: 64 * 1024]
            assert headers["payload.truncated_from"] == str(len(value))
            continue
        assert any(m.value == value for _, m in by_reason[reason]), reason
    rows = sorted(int(h["source.row"]) for h, _ in by_reason["schema"] if "source.row" in h)
    assert rows == [6, 7]  # the two bad rows of the partly bad batch, by index
    row_7 = next(m for h, m in by_reason["schema"] if h.get("source.row") == "7")
    assert orjson.loads(row_7.value) == {"prediction_id": "p9"}
    for headers, _ in [x for xs in by_reason.values() for x in xs]:
        assert headers["detail"] and headers["source.topic"] == worker.topic("predictions")
        assert int(headers["source.offset"]) >= 0
