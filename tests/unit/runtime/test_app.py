"""The worker's Faust app as built (no broker: create_app connects nothing)."""

from __future__ import annotations

from faust.types import TP

from driftline.config import config_from_dict
from driftline.monitoring.pipeline import Pipeline
from driftline.observability.metrics import WorkerMetrics
from driftline.runtime.app import QuietMonitor, create_app


def test_faust_keeps_no_statistics_per_message_but_still_what_its_consumer_asks() -> None:
    config = config_from_dict({"models": {"eta": {"task": "binary", "features": {"a": "numeric"}}}})
    app = create_app(config, Pipeline.from_config(config), WorkerMetrics(config))
    monitor = app.monitor
    assert isinstance(monitor, QuietMonitor)
    tp = TP("driftline.predictions", 0)
    monitor.on_message_in(tp, 7, object())  # type: ignore[arg-type]
    assert monitor.messages_received_total == 0
    assert monitor.on_stream_event_in(tp, 7, object(), object()) is None  # type: ignore[arg-type]
    assert monitor.events_total == 0
    monitor.track_tp_end_offset(tp, 42)  # the consumer's own calls still work
    assert monitor.tp_end_offsets[tp] == 42


def test_a_started_worker_freezes_what_start_up_built_and_collects_less_often() -> None:
    import gc

    from driftline.runtime.worker import COLLECTOR_THRESHOLDS, settle_collector

    before = gc.get_threshold()
    try:
        settle_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS
        assert COLLECTOR_THRESHOLDS[0] > before[0]  # young collections rarer than the default
    finally:  # the test process goes back to Python's defaults
        gc.unfreeze()
        gc.set_threshold(*before)
