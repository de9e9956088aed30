"""Scale-out on the real broker: workers join and leave one consumer group while events flow.

Six partitions, twelve models (keyed by model id, so spread over the partitions). Events go
on at a steady rate while worker A runs alone, B joins, C joins, then A stops: the partitions
rebalance three times and each model's detector state moves with its partition (restored from
the changelog). At the end every model's state has counted each of its events exactly once,
and the workers' own counts add up to the events sent (none processed twice).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from kafka.partitioner.default import murmur2

from kafka import KafkaProducer
from tests.conftest import WorkerProcess
from tests.integration.test_worker_integration import changelog_state
from tests.streams import batch_message, events, model_config, write_profile

pytestmark = pytest.mark.kafka

# bench/repeat_scale_out.py runs this test many times and tallies (docs/runtime-patches.md).
MODELS = [f"m{i:02d}" for i in range(12)]
PER_MESSAGE = 50
ROUNDS = 80  # one message per model per round: 48,000 events
ROUND_SECONDS = 0.5  # about 40 s of traffic, through three rebalances


def test_workers_join_and_leave_and_every_event_counts_once(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    (tmp_path / "a").mkdir()
    models = {
        m: model_config(write_profile(tmp_path / f"{m}.json", model_id=m, seed=i))
        for i, m in enumerate(MODELS)
    }
    a = WorkerProcess(
        tmp_path / "a", kafka_bootstrap, models, partitions=6, session_timeout_seconds=6
    )
    b, c = a.peer(tmp_path / "b"), a.peer(tmp_path / "c")
    rng = np.random.default_rng(12)
    sent = dict.fromkeys(MODELS, 0)
    done = threading.Event()

    def traffic() -> None:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        try:
            for r in range(ROUNDS):
                for m in MODELS:
                    rows = events(PER_MESSAGE, rng, start=r * PER_MESSAGE)
                    producer.send(
                        a.topic("predictions"), key=m.encode(), value=batch_message(m, rows)
                    )
                    sent[m] += PER_MESSAGE
                producer.flush()
                time.sleep(ROUND_SECONDS)
        finally:
            producer.close()
            done.set()

    a.start()
    producer_thread = threading.Thread(target=traffic)
    counted: dict[str, float] = {}
    try:
        producer_thread.start()
        a.wait_processed(PER_MESSAGE * len(MODELS) * 5)
        b.start()
        time.sleep(8)
        c.start()
        time.sleep(8)
        counted["a"] = a.stop_counting()  # a clean leave: its partitions go to B and C
        assert done.wait(120), "the traffic did not finish"
        total = sum(sent.values())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if counted["a"] + b.processed() + c.processed() >= total:
                break
            time.sleep(0.5)
        counted["b"], counted["c"] = b.processed(), c.processed()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the last runs' state reaches the changelog
            state = changelog_state(kafka_bootstrap, a.app_id)
            if all(state.get(f"{m}/_model/events") == str(sent[m]).encode() for m in MODELS):
                break
            time.sleep(1.0)
    finally:
        done.wait(120)
        for w in (a, b, c):
            w.stop()
    per_model = {m: int(state.get(f"{m}/_model/events", b"0")) for m in MODELS}
    assert per_model == sent, (per_model, b.log_tail())
    # Every event processed; a few more than once across workers, as exactly_once allows: a
    # worker losing a partition mid-run has its transaction aborted (state writes with it)
    # and the new owner processes those events again from the restored state.
    assert sum(counted.values()) >= total, counted
    assert counted["b"] > 0 and counted["c"] > 0  # both took part of the load


def test_a_partition_kept_across_a_rebalance_is_restored_with_its_open_transaction(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """A worker keeps one of its two partitions when a second worker joins, and restores it
    from the changelog. What it wrote since its last commit waits in an open transaction (a
    commit interval of a minute keeps it open): committed before the rebalance
    (runtime/patches/commit_before_rebalance.py), the restore has it and no event is read
    again. Without that commit the restore stopped before the open transaction and the worker
    read the partition again from the last committed offset."""
    models_on = {
        p: [m for m in ("m0", "m1", "m2", "m3") if partition_of(m, 2) == p] for p in (0, 1)
    }
    assert models_on[0] and models_on[1]  # both partitions carry models
    (tmp_path / "a").mkdir()
    models = {
        m: model_config(write_profile(tmp_path / f"{m}.json", model_id=m, seed=i))
        for i, m in enumerate(models_on[0] + models_on[1])
    }
    a = WorkerProcess(
        tmp_path / "a",
        kafka_bootstrap,
        models,
        partitions=2,
        session_timeout_seconds=6,
        commit_interval_seconds=60,
    )
    b = a.peer(tmp_path / "b")
    rng = np.random.default_rng(5)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)

    def send_wave(start: int) -> None:
        for m in models:
            for s in range(start, start + 1_000, PER_MESSAGE * 5):
                rows = events(PER_MESSAGE * 5, rng, start=s)
                producer.send(a.topic("predictions"), key=m.encode(), value=batch_message(m, rows))
        producer.flush()

    total = 2_000 * len(models)
    try:
        a.start()
        send_wave(0)
        a.wait_processed(total // 2)
        b.start()
        deadline = time.monotonic() + 60  # the rebalance done: both ready with new partitions
        while (readies(a) < 2 or readies(b) < 1) and time.monotonic() < deadline:
            time.sleep(0.2)
        send_wave(1_000)
        deadline = time.monotonic() + 90
        while a.processed() + b.processed() < total and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # anything read twice would show in the counts by now
        counted = {"a": a.processed(), "b": b.processed()}
    finally:
        producer.close()
        a.stop()
        b.stop()
    assert counted["b"] > 0, b.log_tail()  # B took a partition
    assert counted["a"] + counted["b"] == total, (counted, a.log_tail())
    state = changelog_state(kafka_bootstrap, a.app_id)
    assert {m: state.get(f"{m}/_model/events") for m in models} == dict.fromkeys(models, b"2000")


def readies(worker: WorkerProcess) -> int:
    """How many assignments the worker has finished recovering (Faust logs each)."""
    return worker.log_path.read_text().count("Worker ready")


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (the SDK's and kcat's too)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
