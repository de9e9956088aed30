"""Which package of driftline may import which: the architecture, checked by a test.

Bottom to top:

- ``config``: the validated YAML configuration; imports nothing of driftline.
- ``detectors``: pure detectors and reference profiles (numpy in, verdicts out).
- ``events``: pure event contracts, the batch codec, alert and request records.
- ``monitoring``: pure per-model monitoring: monitor, alert policy, data quality,
  performance, label join, retraining, the pipeline (bytes in, alerts and dead letters out),
  baseline and replay. Never Faust, Kafka, HTTP or metrics.
- ``observability``: Prometheus metrics, Grafana dashboards, Slack and webhook messages, logs.
- ``report``: pages people look at, written from records and events (no Kafka, no HTTP).
- ``runtime``: Faust and Kafka: the app and its agent, table state, topics, delivery, worker;
  ``runtime.patches`` holds one module per fix to a streaming library, version-guarded.
- ``sdk``: the client loggers an inference service calls.
- ``cli``: the commands; may import anything.

tests/unit/test_layering.py reads every module's imports (inside functions too) and fails on
an import this table does not allow.
"""

from __future__ import annotations

PACKAGES = (
    "config",
    "detectors",
    "events",
    "monitoring",
    "observability",
    "report",
    "runtime",
    "sdk",
    "cli",
)

# package -> the driftline packages it may import (itself always)
ALLOWED: dict[str, frozenset[str]] = {
    "config": frozenset(),
    "detectors": frozenset(),
    "events": frozenset({"detectors"}),
    "monitoring": frozenset({"config", "detectors", "events"}),
    "observability": frozenset({"config", "detectors", "events", "monitoring"}),
    "report": frozenset({"config", "detectors", "events", "monitoring"}),
    "runtime": frozenset(
        {"config", "detectors", "events", "monitoring", "observability", "report"}
    ),
    "sdk": frozenset(),
    "cli": frozenset(PACKAGES),
}

# Third-party I/O the pure packages never import.
IO_LIBRARIES = frozenset(
    {
        "faust",
        "mode",
        "kafka",
        "aiokafka",
        "aiohttp",
        "httpx",
        "requests",
        "prometheus_client",
        "grafana_client",
    }
)
PURE = frozenset({"config", "detectors", "events", "monitoring", "report"})

# Imports the table forbids that the code still has, each with what removes it. The test
# fails when one goes away (so the entry is deleted) as well as on any new one.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}
