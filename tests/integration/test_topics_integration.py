"""The worker's topics at start: the input topics' partition counts agree, or it says why."""

from __future__ import annotations

import uuid

import pytest
from kafka.admin import NewTopic

from driftline.config import ConfigError, config_from_dict
from driftline.runtime.topics import ensure_topics
from kafka import KafkaAdminClient

pytestmark = pytest.mark.kafka


def config(bootstrap: str, prefix: str) -> object:
    return config_from_dict(
        {
            "kafka": {"bootstrap_servers": bootstrap},
            "topics": {"prefix": prefix, "partitions": 3},
            "models": {"m": {"task": "regression", "features": {"x": "numeric"}}},
        },
        source="c.yaml",
    )


def create(bootstrap: str, **counts: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, n, 1) for name, n in counts.items()])
    finally:
        admin.close()


def test_labels_follow_a_predictions_topic_a_producer_created(kafka_bootstrap: str) -> None:
    prefix = f"tp-{uuid.uuid4().hex[:6]}."
    create(kafka_bootstrap, **{f"{prefix}predictions": 1})  # as auto-creation by a producer
    counts = ensure_topics(config(kafka_bootstrap, prefix))  # type: ignore[arg-type]
    assert counts[f"{prefix}labels"] == counts[f"{prefix}predictions"] == 1
    assert counts[f"{prefix}alerts"] == 3


def test_input_topics_with_different_counts_are_refused_in_one_line(kafka_bootstrap: str) -> None:
    prefix = f"tp-{uuid.uuid4().hex[:6]}."
    create(kafka_bootstrap, **{f"{prefix}predictions": 1, f"{prefix}labels": 2})
    with pytest.raises(ConfigError) as err:
        ensure_topics(config(kafka_bootstrap, prefix))  # type: ignore[arg-type]
    assert str(err.value) == (
        f"c.yaml: topics: {prefix}predictions has 1 partitions and {prefix}labels 2; a model's "
        "predictions, labels and retraining statuses must land on the same partition number: "
        "give the topics the same count"
    )
