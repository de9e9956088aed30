"""The SDK: never blocks the caller, bounds memory, counts drops, flushes on close."""

from __future__ import annotations

import threading
import time

import pytest

from driftline import PredictionLogger


class _Future:
    def __init__(self) -> None:
        self.callbacks: list = []

    def add_callback(self, fn):
        self.callbacks.append(fn)
        return self

    def add_errback(self, fn):
        return self


class StuckProducer:
    """A producer whose broker is gone: send() blocks, as kafka-python's does when full."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def send(self, topic, key=None, value=None):
        self.release.wait()
        return _Future()

    def flush(self, timeout=None) -> None:
        pass

    def close(self, timeout=None) -> None:
        self.release.set()


def test_log_never_blocks_and_memory_is_bounded() -> None:
    producer = StuckProducer()
    logger = PredictionLogger(
        "m", "1", producer=producer, batch_size=10, linger_ms=1, max_buffered=100
    )
    started = time.perf_counter()
    results = [logger.log(f"p{i}", {"a": 1.0}, 0.5) for i in range(5_000)]
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0  # 5,000 calls against a dead broker return at once
    assert logger.stats.accepted <= 100 + 10  # the buffer plus the one batch in the sender
    assert logger.stats.dropped == 5_000 - logger.stats.accepted
    assert results.count(False) == logger.stats.dropped
    producer.release.set()
    logger.close(timeout=2)


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="compression: expected one of"):
        PredictionLogger("m", "1", compression="brotli", producer=object())  # type: ignore[arg-type]
