"""The SDK against the real broker: batches, lingering, every codec."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from driftline import LabelLogger, PredictionLogger
from driftline.events.codec import BatchDecoder, ModelSchema
from tests.conftest import read_topic


@pytest.mark.kafka
def test_batches_reach_kafka_and_close_flushes(kafka_bootstrap: str) -> None:
    topic = f"sdk-test-{time.time_ns()}"
    logger = PredictionLogger(
        "eta", "7", topic=topic, bootstrap_servers=kafka_bootstrap, batch_size=100, linger_ms=50
    )
    for i in range(250):
        logger.log(f"p{i}", {"distance_km": np.float64(i) / 10, "city": "north"}, prediction=i)
    logger.close()
    assert logger.stats.sent == 250 and logger.stats.dropped == 0
    messages = read_topic(kafka_bootstrap, topic, min_messages=3)
    docs = [orjson.loads(m.value) for m in messages]
    sizes = [len(d["columns"]["prediction_id"]) for d in docs]
    # at most batch_size per message; exact cuts depend on timing (linger on a busy machine)
    assert sum(sizes) == 250 and max(sizes) <= 100 and len(sizes) >= 3
    assert all(m.key == b"eta" for m in messages)
    assert docs[0]["model_version"] == "7"
    assert docs[0]["columns"]["features"]["distance_km"][3] == 0.3
    ids = [i for d in docs for i in d["columns"]["prediction_id"]]
    assert ids == [f"p{i}" for i in range(250)]
    # what the worker reads: the columnar batch decodes without dead letters
    decoder = BatchDecoder({"eta": ModelSchema(numeric=("distance_km",), categorical=("city",))})
    decoded = decoder.decode_predictions(messages[-1].value)
    assert decoded.batch is not None and len(decoded.batch) == sizes[-1]
    assert not decoded.dead_letters
    assert decoded.batch.categorical["city"].tolist() == ["north"] * sizes[-1]


@pytest.mark.kafka
def test_label_logger_lingers_a_partial_batch_out(kafka_bootstrap: str) -> None:
    topic = f"sdk-labels-{time.time_ns()}"
    logger = LabelLogger(
        "eta", topic=topic, bootstrap_servers=kafka_bootstrap, batch_size=1000, linger_ms=100
    )
    logger.log("p1", 31.5)
    messages = read_topic(kafka_bootstrap, topic, min_messages=1, wait=10)
    assert orjson.loads(messages[0].value)["events"][0]["label"] == 31.5  # sent before close
    logger.close()


@pytest.mark.kafka
@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_the_sdk_writes_each_codec_and_an_independent_client_reads_it(
    kafka_bootstrap: str, codec: str | None
) -> None:
    import shutil
    import subprocess
    import uuid

    topic = f"sdk-codec-{codec}-{uuid.uuid4().hex[:6]}"
    logger = PredictionLogger(
        "m", "1", topic=topic, bootstrap_servers=kafka_bootstrap, compression=codec, batch_size=50
    )
    assert logger._producer.config["compression_type"] == codec
    for i in range(120):
        logger.log(f"p{i}", {"x": float(i)}, prediction=1.0)
    logger.close()
    kcat = shutil.which("kcat")
    assert kcat
    out = subprocess.run(
        [kcat, "-C", "-b", kafka_bootstrap, "-t", topic, "-e", "-q", "-f", "%s\n"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    docs = [orjson.loads(line) for line in out.stdout.splitlines()]
    ids = [i for d in docs for i in d["columns"]["prediction_id"]]
    assert ids == [f"p{i}" for i in range(120)]
