"""Topic set-up: create driftline's topics before anything produces to them.

If a producer wrote first, the broker would auto-create the topic with its default partition
count, and Faust tables (which must be co-partitioned with their source) would not match. So
the worker, the demo and the CLI create the topics up front with the configured partitions,
and the worker sizes its tables from the source topic as it really is.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from driftline.config import Config, ConfigError, KafkaSettings
from kafka import KafkaAdminClient


def kafka_client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """kafka-python connection options, security included (shared by SDK, CLI and admin)."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    if kafka.ssl_cafile:
        options["ssl_cafile"] = kafka.ssl_cafile
    return options


def aiokafka_options(kafka: KafkaSettings) -> dict[str, Any]:
    """The same options for aiokafka (the delivery loop): it takes an SSL context, not a file."""
    options = kafka_client_options(kafka)
    cafile = options.pop("ssl_cafile", None)
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(cafile=cafile)
    return options


def faust_credentials(kafka: KafkaSettings) -> Any:
    """The same security for the worker's Faust app (``broker_credentials``), or None."""
    import faust

    context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        context = create_ssl_context(cafile=kafka.ssl_cafile)
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            ssl_context=context,
            mechanism=kafka.sasl_mechanism or "PLAIN",
        )
    return faust.SSLCredentials(context) if context is not None else None


def ensure_topics(config: Config, timeout: float = 30.0) -> dict[str, int]:
    """Create missing driftline topics; return the partition count of each."""
    topics = config.topics
    wanted = {
        topics.predictions: topics.partitions,
        topics.labels: topics.partitions,
        topics.alerts: topics.partitions,
        topics.retraining_requests: topics.partitions,
        topics.performance_windows: topics.partitions,
        topics.feature_windows: topics.partitions,
        topics.dead_letter: topics.partitions,
        topics.retraining_status: topics.partitions,
        topics.retraining_samples: topics.partitions,
        topics.deliveries: 1,  # small, compacted, read whole by every worker at start
        topics.profiles: 1,  # the same: reference profiles by model and version
    }
    compacted = {topics.deliveries, topics.profiles}
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(
                **kafka_client_options(config.kafka), request_timeout_ms=10_000
            )
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
    try:
        existing = set(admin.list_topics())
        # A model's predictions and labels must land on the same partition number: a new
        # input topic takes the count of the one that exists (a producer may have created it).
        inputs = [topics.predictions, topics.labels, topics.retraining_status]
        for name in inputs:
            if name in existing and not all(i in existing for i in inputs):
                (found,) = _partition_counts(admin, [name]).values()
                wanted.update({i: found for i in inputs if i not in existing})
        new = [
            NewTopic(
                name,
                num_partitions=n,
                replication_factor=topics.replication_factor,
                topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
            )
            for name, n in wanted.items()
            if name not in existing
        ]
        if new:
            # another process may have created one in between
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        counts: dict[str, int] = {}
        while len(counts) < len(wanted):
            counts = _partition_counts(admin, list(wanted))
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready after {timeout}s: {sorted(wanted)}")
            if len(counts) < len(wanted):
                time.sleep(0.2)
    finally:
        admin.close()
    for other in (topics.labels, topics.retraining_status):
        if counts[topics.predictions] != counts[other]:
            raise ConfigError(
                f"{config.source}: topics: {topics.predictions} has "
                f"{counts[topics.predictions]} partitions and {other} {counts[other]}; a "
                "model's predictions, labels and retraining statuses must land on the same "
                "partition number: give the topics the same count"
            )
    return counts


def _partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partitions of each topic that has them (a new topic may have none yet)."""
    return {  # kafka-python 2 says "topic", 3 says "name"
        d.get("name") or d["topic"]: len(d["partitions"])
        for d in admin.describe_topics(names)
        if d.get("partitions")
    }


def publish_profile(config: Config, key: str, value: bytes) -> str:
    """Write a reference profile to the compacted profiles topic; return the topic name.

    Compaction keeps the newest profile per ``model/version`` key forever, so a new worker
    (or another team) can read the current references from the topic alone.
    """
    from kafka import KafkaProducer

    topic = config.topics.profiles
    admin = KafkaAdminClient(**kafka_client_options(config.kafka), request_timeout_ms=10_000)
    try:
        if topic not in set(admin.list_topics()):
            new = NewTopic(
                topic,
                num_partitions=1,
                replication_factor=config.topics.replication_factor,
                topic_configs={"cleanup.policy": "compact"},
            )
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([new])
    finally:
        admin.close()
    producer = KafkaProducer(**kafka_client_options(config.kafka), max_request_size=4 << 20)
    try:
        producer.send(topic, key=key.encode(), value=value).get(timeout=30)
    finally:
        producer.close()
    return topic


class GroupLag:
    """How far a consumer group's committed offsets are behind the ends of some topics.

    Committed offsets move only once the group's consumer has processed what they cover (the
    worker commits them with its state), so a lag of zero means everything sent so far is done.
    The probe reads the group's offsets without joining it.
    """

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(
            **kafka_client_options(kafka), group_id=group, enable_auto_commit=False
        )

    def ends(self, topics: list[str]) -> dict[TopicPartition, int]:
        """The end offset of every partition of ``topics`` (transaction markers included)."""
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        return dict(self.consumer.end_offsets(partitions)) if partitions else {}

    def behind(self, topics: list[str]) -> dict[str, int]:
        """Messages per topic that the group has not committed (all of them before it has)."""
        ends = self.ends(topics)
        starts = self.consumer.beginning_offsets(list(ends))
        lag = dict.fromkeys(topics, 0)
        for tp, end in ends.items():
            committed = self.consumer.committed(tp)
            lag[tp.topic] += max(0, end - (starts[tp] if committed is None else committed))
        return lag

    def close(self) -> None:
        self.consumer.close()


def dump_topic(kafka: KafkaSettings, topic: str, path: Path) -> int:
    """Every committed record of ``topic`` into ``path``, a value per line (the records
    driftline publishes are one-line JSON); how many."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        **kafka_client_options(kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    try:
        parts = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        count = 0
        with path.open("wb") as out:
            while any(consumer.position(tp) < end for tp, end in ends.items()):
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        out.write((record.value or b"") + b"\n")
                        count += 1
        return count
    finally:
        consumer.close()
