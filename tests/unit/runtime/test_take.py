"""Takes bounded by count and bytes (runtime/take.py), in Faust's test context (no broker:
the agent's stream is fed directly; the worker's integration tests run it on Kafka)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import pytest

from driftline.config import config_from_dict
from driftline.monitoring.replay import takes
from driftline.runtime.take import take_bounded
from tests.streams import counted, model_config, write_profile


def run_takes(values: list[bytes], max_events: int, max_bytes: int) -> list[dict[str, Any]]:
    """Each take's values, and which events were acked while it was processed."""
    app = faust.App("take-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    topic = app.topic(
        "t", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    seen: list[dict[str, Any]] = []
    before: list[Any] = []

    @app.agent(topic)
    async def agent(stream: faust.StreamT) -> None:
        assert isinstance(stream, faust.Stream)
        async for taken in take_bounded(stream, max_events, max_bytes, 0.05):
            seen.append(
                {
                    "values": [e.value for e in taken],
                    "own_acked": any(e.message.acked for e in taken),
                    "earlier_acked": all(e.message.acked for e in before),
                }
            )
            before[:] = taken

    async def feed() -> None:
        async with agent.test_context() as context:
            for value in values:
                await context.put(value)
            await asyncio.sleep(0.3)  # past the 50 ms linger: the last take is yielded

    asyncio.run(feed())
    return seen


def test_a_take_ends_at_the_event_count_or_the_bytes_whichever_comes_first() -> None:
    values = [b"a", b"bb", b"c", b"d", b"e", b"0123456789", b"x", b"yyyyyy", b"zz"]
    seen = run_takes(values, max_events=4, max_bytes=10)
    assert [t["values"] for t in seen] == [
        [b"a", b"bb", b"c", b"d"],  # 4 events, 5 bytes
        [b"e", b"0123456789"],  # 11 bytes: one message over is still taken whole
        [b"x", b"yyyyyy", b"zz"],  # neither bound: what came within the linger
    ]
    # a take is acked only after it was processed: when the next one is asked for
    assert not any(t["own_acked"] for t in seen)
    assert all(t["earlier_acked"] for t in seen)


def test_replay_cuts_takes_as_the_worker_does() -> None:
    values = [b"a", b"bb", b"c", b"d", b"e", b"0123456789", b"x", b"yyyyyy", b"zz"]
    assert list(takes(values, 4, 10)) == [
        [b"a", b"bb", b"c", b"d"],
        [b"e", b"0123456789"],
        [b"x", b"yyyyyy", b"zz"],
    ]
    assert list(takes([], 4, 10)) == []


@pytest.mark.parametrize("enabled", [True, False])
def test_the_pipeline_pauses_the_cycle_collector_only_while_it_runs(
    enabled: bool, tmp_path: Path
) -> None:
    config = config_from_dict({"models": {"m1": model_config(write_profile(tmp_path / "m1.json"))}})
    pipeline = counted(config)
    states: list[bool] = []

    def recording(decode: Callable[[bytes | None], Any]) -> Callable[[bytes | None], Any]:
        def run(value: bytes | None) -> Any:
            states.append(gc.isenabled())
            if value == b"fail":
                raise ValueError("bad run")
            return decode(value)

        return run

    decoder = pipeline.decoder
    decoder.decode_prediction_rows = recording(decoder.decode_prediction_rows)  # type: ignore[method-assign]
    decoder.decode_labels = recording(decoder.decode_labels)  # type: ignore[method-assign]
    (gc.enable if enabled else gc.disable)()
    try:
        pipeline.process_messages([b"{}"], {})
        with pytest.raises(ValueError):
            pipeline.process_labels([b"fail"], {}, {})
        assert states == [False, False]
        assert gc.isenabled() is enabled  # as it was, after a failed run too
    finally:
        gc.enable()
