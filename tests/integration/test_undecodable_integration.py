"""Compressed messages on the real broker: every codec a producer may use is read, and a batch
the worker's client cannot decode is dead-lettered without stopping the partition."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import WorkerProcess, read_topic, scrape
from tests.streams import batch_message, events, model_config, write_profile

pytestmark = pytest.mark.kafka

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
EVENTS_PER_MESSAGE = 20
# The worker's client without zstd, as a worker without the codec's library was: aiokafka's
# pure-Python records (its C extension checks codecs the same way), with zstd reported missing.
WITHOUT_ZSTD = (
    "import os\n"
    "os.environ['AIOKAFKA_NO_EXTENSIONS'] = '1'\n"
    "import aiokafka.codec\n"
    "aiokafka.codec.has_zstd = lambda: False\n"
)


def kcat_send(bootstrap: str, topic: str, codec: str, messages: list[bytes]) -> None:
    """Send ``messages`` (one per line) with kcat, compressed with ``codec``."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is installed by make setup / .ci/run"
    subprocess.run(
        [kcat, "-P", "-b", bootstrap, "-t", topic, "-k", "m1", "-z", codec],
        input=b"\n".join(messages) + b"\n",
        check=True,
        timeout=30,
    )


def rounds(
    rng: np.random.Generator, n_rounds: int, per_codec: int
) -> list[tuple[str, list[bytes]]]:
    """Messages per codec, the codecs interleaved round after round."""
    out, start = [], 0
    for _ in range(n_rounds):
        for codec in CODECS:
            msgs = []
            for _ in range(per_codec):
                msgs.append(batch_message("m1", events(EVENTS_PER_MESSAGE, rng, start=start)))
                start += EVENTS_PER_MESSAGE
            out.append((codec, msgs))
    return out


def test_every_codec_interleaved_is_counted_exactly(tmp_path: Path, kafka_bootstrap: str) -> None:
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(tmp_path, kafka_bootstrap, {"m1": model_config(profile)})
    sent = rounds(np.random.default_rng(3), n_rounds=3, per_codec=4)
    total = sum(len(msgs) for _, msgs in sent) * EVENTS_PER_MESSAGE
    worker.start()
    try:
        for codec, msgs in sent:
            kcat_send(kafka_bootstrap, worker.topic("predictions"), codec, msgs)
        worker.wait_processed(total)
        processed = worker.processed()
        dead = scrape(worker.metrics_port, "driftline_dead_letters_total")
    finally:
        worker.stop()
    assert processed == total and dead == 0


def zstd_batches(dead: list[Any]) -> list[int]:
    """The source offsets the dead letters' batches cover, checking each letter on the way."""
    covered: list[int] = []
    for message in dead:
        h = {k: v.decode() for k, v in message.headers}
        assert h["reason"] == "undecodable_batch"
        batch = re.search(r"offsets (\d+)-(\d+), codec zstd:", h["detail"])
        assert batch, h["detail"]
        first, last = (int(x) for x in batch.groups())
        # it points at its batch's last offset on the source topic, where the bytes stay
        assert int(h["source.offset"]) == last
        assert h["source.topic"].endswith(".predictions")
        covered.extend(range(first, last + 1))
    return covered


def test_a_batch_the_client_cannot_decode_is_dead_lettered_and_the_rest_goes_on(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(
        tmp_path, kafka_bootstrap, {"m1": model_config(profile)}, session_timeout_seconds=6
    )
    worker.prelude = WITHOUT_ZSTD
    rng = np.random.default_rng(4)
    sent = [(c, m) for c, m in rounds(rng, n_rounds=2, per_codec=3) if c in ("gzip", "zstd")]
    readable = sum(len(m) for c, m in sent if c != "zstd") * EVENTS_PER_MESSAGE
    zstd_offsets: list[int] = []
    offset = 0
    for codec, msgs in sent:
        if codec == "zstd":
            zstd_offsets.extend(range(offset, offset + len(msgs)))
        offset += len(msgs)
    worker.start()
    try:
        for codec, msgs in sent:
            kcat_send(kafka_bootstrap, worker.topic("predictions"), codec, msgs)
        worker.wait_processed(readable)
        # kcat usually sends each call's messages as one batch but may split them: one dead
        # letter per batch, together covering exactly the zstd messages
        deadline = time.monotonic() + 30
        while True:
            dead = read_topic(kafka_bootstrap, worker.topic("dead-letter"), timeout_ms=500)
            if zstd_batches(dead) == zstd_offsets or time.monotonic() > deadline:
                break
        # a restart reads the committed offsets on: no crash loop, nothing counted twice
        worker.stop()
        first_exit = worker.proc.returncode if worker.proc else None
        worker.start()
        kcat_send(kafka_bootstrap, worker.topic("predictions"), "gzip", sent[0][1])
        worker.wait_processed(len(sent[0][1]) * EVENTS_PER_MESSAGE)
        after_restart = worker.processed()
        assert worker.proc is not None and worker.proc.poll() is None
        counted = scrape(
            worker.metrics_port, "driftline_dead_letters_total", 'reason="undecodable_batch"'
        )
    finally:
        worker.stop()
    assert zstd_batches(dead) == zstd_offsets
    # the stop right after the last take committed its offsets and exited by itself
    assert first_exit == 0, worker.log_tail()
    assert "Not in the middle of a transaction" not in worker.log_path.read_text()
    assert after_restart == len(sent[0][1]) * EVENTS_PER_MESSAGE
    assert counted == 0  # the restarted worker met no undecodable batch again
    assert len(read_topic(kafka_bootstrap, worker.topic("dead-letter"))) == len(dead)
