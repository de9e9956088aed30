"""A worker stopped mid-stream, killed (SIGKILL) or asked to (SIGTERM): after a restart every
event counts exactly once.

With the default processing guarantee (exactly_once: state changelog and offsets in one
transaction) and the state of a model written as one record per run.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.conftest import WorkerProcess
from tests.streams import events, model_config, write_profile
from tests.test_worker_integration import changelog_state, produce

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_stop_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, kafka_bootstrap: str, stop: signal.Signals
) -> None:
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(
        tmp_path,
        kafka_bootstrap,
        {"m1": model_config(profile)},
        session_timeout_seconds=6,
        micro_batch_messages=4,  # many small takes, so the kill lands between them
    )
    rng = np.random.default_rng(5)
    rows = events(20_000, rng)
    worker.start()
    try:
        produce(kafka_bootstrap, worker.topic("predictions"), "m1", rows, 100)
        worker.wait_processed(6_000)
        worker.stop(stop)
        worker.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = changelog_state(kafka_bootstrap, worker.app_id)
            if state.get("m1/_model/events") == b"20000":
                break
            time.sleep(1.0)
    finally:
        worker.stop()
    state = changelog_state(kafka_bootstrap, worker.app_id)
    assert state["m1/_model/events"] == b"20000", (state["m1/_model/events"], worker.log_tail())
    for feature, detector in [("x1", "cusum"), ("x2", "cusum"), ("color", "categorical_cusum")]:
        assert orjson.loads(state[f"m1/{feature}/{detector}"])["n"] == 20_000
