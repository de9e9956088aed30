"""The worker's Faust app as built (no broker: create_app connects nothing)."""

from __future__ import annotations

from faust.types import TP

from driftline.config import config_from_dict
from driftline.pipeline import Pipeline
from driftline.stream.app import QuietMonitor, create_app


def test_faust_keeps_no_statistics_per_message_but_still_what_its_consumer_asks() -> None:
    config = config_from_dict({"models": {"eta": {"task": "binary", "features": {"a": "numeric"}}}})
    app = create_app(config, Pipeline.from_config(config))
    monitor = app.monitor
    assert isinstance(monitor, QuietMonitor)
    tp = TP("driftline.predictions", 0)
    monitor.on_message_in(tp, 7, object())  # type: ignore[arg-type]
    assert monitor.messages_received_total == 0
    assert monitor.on_stream_event_in(tp, 7, object(), object()) is None  # type: ignore[arg-type]
    assert monitor.events_total == 0
    monitor.track_tp_end_offset(tp, 42)  # the consumer's own calls still work
    assert monitor.tp_end_offsets[tp] == 42
