"""Consumer lag: how far this worker is behind on each partition it was assigned.

Lag is measured against what the worker has *processed* (state applied, alerts sent), not what
it has fetched: a worker that fetched a backlog but is still chewing on it is behind.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge

INTERVAL_SECONDS = 5.0


class LagReporter:
    def __init__(self, topics: set[str], gauge: Gauge) -> None:
        self.topics = topics
        self.gauge = gauge
        self.processed: dict[Any, int] = {}  # TP -> highest offset processed
        self._reported: set[tuple[str, int]] = set()

    def processed_up_to(self, tp: Any, offset: int) -> None:
        self.processed[tp] = max(offset, self.processed.get(tp, -1))

    async def report(self, consumer: Any) -> None:
        """Set the lag of each assigned partition; drop the series of partitions moved away."""
        assigned = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        ends = await consumer.highwaters(*assigned) if assigned else {}
        now: set[tuple[str, int]] = set()
        for tp in assigned:
            end = ends.get(tp)
            done = self.processed.get(tp)
            # Nothing processed yet since the assignment: the consumer's position is where
            # processing will start (the committed offset).
            start = done + 1 if done is not None else await consumer.position(tp)
            if end is None or start is None:
                continue
            self.gauge.labels(tp.topic, str(tp.partition)).set(max(0, end - start))
            now.add((tp.topic, tp.partition))
        for topic, partition in self._reported - now:
            self.gauge.remove(topic, str(partition))
        self._reported = now
        kept = set(assigned)  # a partition moved away starts afresh if it comes back
        self.processed = {tp: o for tp, o in self.processed.items() if tp in kept}
