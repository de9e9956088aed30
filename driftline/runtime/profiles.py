"""The compacted profiles topic, read by every worker: at start to its end, then as it grows.

``driftline baseline --publish`` writes a profile under ``<model>/<version>``; compaction keeps
the newest per key. Each worker reads the whole topic before it consumes any event (so a
restart compares every version with the profile it had), then a thread goes on reading it and
queues what arrives. The agent takes the queue at the start of each take: profiles change
only between runs of the pipeline, in the agent's own task. There is no consumer group: every
worker reads every profile, and none moves another's partitions.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from driftline.config import Config
from driftline.detectors.profile import ReferenceProfile
from driftline.runtime.topics import kafka_client_options

log = logging.getLogger(__name__)

FOLLOW_WAIT_MS = 5_000


class ProfileFeed:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.topic = config.topics.profiles
        self.arrived: queue.SimpleQueue[ReferenceProfile] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self._consumer: Any = None
        self._thread: threading.Thread | None = None

    def read_existing(self, timeout: float = 30.0) -> list[ReferenceProfile]:
        """Every profile on the topic now (the newest per key), read to the end."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = self._consumer = KafkaConsumer(
            **kafka_client_options(self.config.kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # a long poll: the broker answers at once when a profile comes, and the thread
            # wakes (taking the GIL from the agent) every few seconds otherwise
            fetch_max_wait_ms=FOLLOW_WAIT_MS,
        )
        deadline = time.monotonic() + timeout
        consumer.topics()  # asks the broker for metadata: partitions_for_topic reads its cache
        partitions = consumer.partitions_for_topic(self.topic)
        while not partitions:  # the topic was just created (ensure_topics): its metadata lags
            if time.monotonic() > deadline:
                raise TimeoutError(f"profiles topic {self.topic} has no partitions")
            time.sleep(0.2)
            consumer.topics()
            partitions = consumer.partitions_for_topic(self.topic)
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        found: dict[bytes, ReferenceProfile] = {}
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for records in consumer.poll(timeout_ms=int(timeout * 1000)).values():
                for record in records:
                    profile = self._read(record.key, record.value)
                    if profile is not None:
                        found[record.key] = profile
                    elif record.key in found:  # a tombstone: that version's profile withdrawn
                        del found[record.key]
        return list(found.values())

    def start(self) -> None:
        """Go on reading the topic from where ``read_existing`` stopped, in a thread."""
        self._thread = threading.Thread(target=self._follow, name="driftline-profiles", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        consumer = self._consumer
        try:
            while not self.stopping.is_set():
                for records in consumer.poll(timeout_ms=FOLLOW_WAIT_MS).values():
                    for record in records:
                        profile = self._read(record.key, record.value)
                        if profile is not None:
                            self.arrived.put(profile)
        except Exception as exc:  # never the worker's end: it keeps the profiles it has
            log.error("profiles topic %s no longer read: %s", self.topic, exc)
        finally:
            consumer.close()

    def drain(self) -> list[ReferenceProfile]:
        """The profiles that arrived since the last call."""
        out = []
        while True:
            try:
                out.append(self.arrived.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        """Close the consumer ``read_existing`` left open, when no thread goes on with it."""
        if self._consumer is not None and self._thread is None:
            self._consumer.close()

    def _read(self, key: bytes | None, value: bytes | None) -> ReferenceProfile | None:
        if not value:
            return None
        try:
            return ReferenceProfile.from_json(value)
        except (ValueError, KeyError, TypeError) as exc:
            name = key.decode("utf-8", "replace") if key else "(no key)"
            log.warning(
                "profiles topic %s: %s is not a driftline profile: %s", self.topic, name, exc
            )
            return None


def published_profiles(config: Config) -> list[ReferenceProfile]:
    """Every profile on the profiles topic now (the newest per model and version)."""
    feed = ProfileFeed(config)
    try:
        return feed.read_existing()
    finally:
        feed.close()
