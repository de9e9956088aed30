"""Junk on the real broker: the worker stays up, and every message is processed or dead-lettered.

A seeded corpus of what broken or hostile producers send (random bytes, deep JSON, huge
strings, wrong types, batches mixing good and junk rows, a 20,000-row batch over the size
limit, and 10,000 messages from distinct unknown model ids) goes onto the predictions topic
between good events. The worker's pipeline run in this process on the same messages says
what to expect; on the broker, the worker must count exactly those events, the dead-letter
topic must hold exactly those dead letters, each with a known reason, and the worker must
still be running with no more metric series than before the junk.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.config import load_config
from driftline.events.codec import Reason
from kafka import KafkaProducer
from tests.conftest import WorkerProcess, read_topic
from tests.streams import batch_message, counted, events, model_config, write_profile

pytestmark = pytest.mark.kafka

UNKNOWN_MODELS = 10_000


def good_rows(n: int, seed: int) -> list[dict[str, Any]]:
    return events(n, np.random.default_rng(seed), start=seed * 1_000)


def junk_value(rnd: random.Random) -> Any:
    return rnd.choice(
        [None, True, 2**70, -1.5, "", "x" * rnd.randint(1, 50), [1, "a"], {"k": [None]}, []]
    )


def junk_row(rnd: random.Random, seed: int) -> dict[str, Any]:
    row: dict[str, Any] = good_rows(1, seed)[0]
    field = rnd.choice(["prediction_id", "timestamp", "features", "prediction", "x1", "color"])
    target = row["features"] if field in ("x1", "color") else row
    how = rnd.choice(["replace", "drop", "huge"])
    if how == "drop":
        target.pop(field, None)
    elif how == "huge":
        target[field] = "x" * rnd.randint(10_000, 300_000)
    else:
        target[field] = junk_value(rnd)
    return row


def corpus(seed: int = 11) -> list[bytes]:
    rnd = random.Random(seed)
    out: list[bytes] = []
    for i in range(60):
        out.append(rnd.randbytes(rnd.randint(0, 500)))
        depth = rnd.randint(1, 5_000)
        out.append(b"[" * depth + b"]" * depth)
        out.append(b'{"model_id": "m1", "x": ' * 50 + b"1" + b"}" * 50)  # deep, valid JSON
        out.append(
            json.dumps({"model_id": "m1", "model_version": "1", **junk_row(rnd, i)}).encode()
        )
        mixed = [junk_row(rnd, i) if rnd.random() < 0.4 else good_rows(1, i)[0] for _ in range(20)]
        out.append(json.dumps({"model_id": "m1", "model_version": "1", "events": mixed}).encode())
        out.append(json.dumps(junk_value(rnd)).encode())
    out.append(batch_message("m1", good_rows(20_000, 99)))  # over the size limit: one dead letter
    row = good_rows(1, 5)[0]
    out += [batch_message(f"intruder-{i}", [row]) for i in range(UNKNOWN_MODELS)]
    rnd.shuffle(out)
    return out


def metric_series(worker: WorkerProcess) -> set[str]:
    """The names and labels of every sample on the worker's /metrics (values left out)."""
    lines = worker._metrics_text().splitlines()
    return {ln.rsplit(" ", 1)[0] for ln in lines if ln and not ln.startswith("#")}


def test_junk_on_the_broker_is_dead_lettered_and_the_worker_stays_up(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(
        tmp_path, kafka_bootstrap, {"m1": model_config(profile)}, max_message_bytes=1 << 20
    )
    junk = corpus()
    # What the worker's own pipeline makes of these messages, run here.
    expected = counted(load_config(worker.path)).process_messages(junk, {})
    assert expected.events > 0 and len(expected.dead_letters) > UNKNOWN_MODELS
    good = [batch_message("m1", good_rows(250, s)) for s in range(4)]

    worker.start()
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=16 << 20)
        topic = worker.topic("predictions")
        for value in good:
            producer.send(topic, key=b"m1", value=value)
        producer.flush()
        worker.wait_processed(1_000)
        before = metric_series(worker)
        for value in junk:
            producer.send(topic, key=b"m1", value=value)
        for value in good:  # good events after the junk are still processed
            producer.send(topic, key=b"m1", value=value)
        producer.flush()
        producer.close()
        worker.wait_processed(2_000 + expected.events, timeout=180)
        dead = read_topic(
            kafka_bootstrap,
            worker.topic("dead-letter"),
            min_messages=len(expected.dead_letters),
            wait=120,
        )
        after = metric_series(worker)
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
        processed = worker.processed()
    finally:
        worker.stop()

    assert processed == 2_000 + expected.events  # every good row of the junk too, once
    assert len(dead) == len(expected.dead_letters)  # every bad message or row, once
    reasons = [dict(m.headers)["reason"].decode() for m in dead]
    assert set(reasons) <= set(Reason.ALL)
    assert reasons.count("unknown_model") == UNKNOWN_MODELS
    assert {"undecodable", "oversize", "schema"} <= set(reasons)
    # oversize messages (the big batch, batches of huge strings): cut to what the producer
    # can send, their size in a header
    oversize = [
        dict(m.headers, value=m.value) for m in dead if dict(m.headers)["reason"] == b"oversize"
    ]
    assert oversize and all(len(m["value"]) == 1 << 20 for m in oversize)
    assert all(int(m["payload.truncated_from"]) > 1 << 20 for m in oversize)
    # Junk names never became label values: models and features only from the config (new
    # series after the junk are the config's own, made when first counted, and lag).
    labels = {(k, v) for series in after for k, v in re.findall(r'(\w+)="([^"]*)"', series)}
    assert {v for k, v in labels if k == "model"} <= {"m1", "_unknown"}
    assert {v for k, v in labels if k == "feature"} <= {
        "x1",
        "x2",
        "color",
        "_prediction",
        "_schema",
        "_joint",
    }
    assert {v for k, v in labels if k == "reason"} <= set(Reason.ALL)
    assert len(after) - len(before) < 20, sorted(after - before)
