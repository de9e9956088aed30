"""The broker stopped for 20 s under a running worker, then started again: the worker
reconnects by itself, catches up on what was produced after, and counts every event once;
its log says so in a few lines, not thousands.

Its own broker (stopping the session's would disturb the other tests), started again on the
same data directory, as a restarted broker is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from driftline.runtime.localkafka import LocalKafka
from tests.conftest import TEST_KAFKA_PORT, WorkerProcess
from tests.integration.test_worker_integration import changelog_state, produce
from tests.streams import events, model_config, write_profile

pytestmark = pytest.mark.kafka

OUTAGE_SECONDS = 20


@pytest.fixture
def own_kafka() -> Iterator[LocalKafka]:
    kafka = LocalKafka(port=TEST_KAFKA_PORT + 8, controller_port=TEST_KAFKA_PORT + 9, name="outage")
    kafka.start(fresh=True)
    try:
        yield kafka
    finally:
        kafka.stop()


def test_worker_rides_out_a_broker_outage(tmp_path: Path, own_kafka: LocalKafka) -> None:
    bootstrap = own_kafka.bootstrap_servers
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(tmp_path, bootstrap, {"m1": model_config(profile)})
    rng = np.random.default_rng(8)
    rows = events(10_000, rng)
    worker.start()
    try:
        produce(bootstrap, worker.topic("predictions"), "m1", rows[:5_000], 250)
        worker.wait_processed(5_000)
        own_kafka.stop()
        time.sleep(OUTAGE_SECONDS)
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
        own_kafka.start()
        produce(bootstrap, worker.topic("predictions"), "m1", rows[5_000:], 250)
        worker.wait_processed(10_000, timeout=180)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the last run's state reaches the changelog
            state = changelog_state(bootstrap, worker.app_id)
            if state.get("m1/_model/events") == b"10000":
                break
            time.sleep(1.0)
        alive = worker.proc.poll() is None
        processed = worker.processed()
    finally:
        worker.stop()
    assert alive, worker.log_tail()
    assert state["m1/_model/events"] == b"10000", worker.log_tail()
    assert processed == 10_000  # none read twice after the reconnect, none skipped
    # The clients' repeated connection errors are collapsed (observability/logthrottle.py): before,
    # this outage wrote about 3,200 lines.
    errors = [ln for ln in worker.log_path.read_text().splitlines() if "[ERROR]" in ln]
    assert 0 < len(errors) < 100, len(errors)
    assert any("more like this in the last" in ln for ln in errors)
