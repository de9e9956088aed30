"""What the pipeline counts into, and a sink for when nothing is served.

The worker passes ``observability.metrics.WorkerMetrics`` (Prometheus); replay, the benches
and tests that read no metrics count into ``UNCOUNTED``. The pipeline stays free of the
metrics library: it sees only this protocol.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class PipelineMetrics(Protocol):
    """The labelled series the pipeline updates (prometheus-client's ``labels()`` API)."""

    events: Any
    batches: Any
    batch_seconds: Any
    dead_letters: Any
    replayed: Any
    unmonitored: Any
    live_versions: Any
    retraining_status: Any
    type_errors: Any
    predictions: Any
    reference_prediction_share: Any
    statistic: Any
    threshold: Any
    drifting: Any
    alerts: Any
    quality_flagged: Any
    quality_failing: Any
    labels: Any
    performance: Any
    performance_by_time: Any
    performance_estimate: Any
    performance_baseline: Any
    retraining_requests: Any

    def series(self, metric: Any, *labels: str) -> Any: ...

    def model_label(self, model_id: str | None) -> str: ...

    def observe_label_delays(self, model_id: str, delays: np.ndarray) -> None: ...


class _Series:
    """Any series, counting nothing."""

    def labels(self, *_: Any) -> _Series:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass

    def remove(self, *_: Any) -> None:
        pass


class _Uncounted:
    """``PipelineMetrics`` that keeps nothing."""

    def __getattr__(self, name: str) -> _Series:
        return _SERIES

    def series(self, metric: Any, *labels: str) -> Any:
        return _SERIES

    def model_label(self, model_id: str | None) -> str:
        return model_id or ""

    def observe_label_delays(self, model_id: str, delays: np.ndarray) -> None:
        pass


_SERIES = _Series()
UNCOUNTED: PipelineMetrics = _Uncounted()
