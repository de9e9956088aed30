"""Each partition's transaction committed before a rebalance.

Breaks: under exactly_once a partition's changelog writes and offsets wait in an open
transaction until the periodic commit, and Faust does not commit on revocation: a worker that
kept a partition restored it only up to the last stable offset, behind its own transaction.
Fix: once the streams are idle and before the new assignment, commit each partition's
transaction with the offsets the state has applied, as Kafka Streams does on revocation.
Test: tests/integration/test_scale_out_integration.py.
Upstream: Faust committing open transactions in its revocation handler.
"""

from __future__ import annotations

import logging

from aiokafka.structs import TopicPartition
from faust.app.base import App
from faust.types import TP

from driftline.runtime.patches import state_positions
from driftline.runtime.patches.guard import require

log = logging.getLogger(__name__)

VERIFIED_FAUST = ("0.15.",)
_on_partitions_revoked = App._on_partitions_revoked


async def revoke_after_commit(self: App, revoked: set[TP]) -> None:
    assignment = set() if self.should_stop else self.consumer.assignment()
    # Faust's handler waits for the streams to finish what they hold and flushes the producer.
    await _on_partitions_revoked(self, revoked)
    positions = state_positions.positions
    if self.should_stop or not self.in_transaction or positions is None:
        return
    wanted = positions()
    offsets = {  # aiokafka's partition type: its transactions check for it
        TopicPartition(tp.topic, tp.partition): wanted[(tp.topic, tp.partition)]
        for tp in assignment
        if (tp.topic, tp.partition) in wanted
    }
    if not offsets:
        return
    try:
        await self.consumer.transactions.commit(offsets, start_new_transaction=True)
        log.info("committed the state of %d input partitions before the rebalance", len(offsets))
    except Exception as exc:  # the periodic commit, or the next owner's replay, covers it
        log.warning("commit before the rebalance failed: %r", exc)


def apply() -> None:
    require("faust-streaming", VERIFIED_FAUST, __name__)
    App._on_partitions_revoked = revoke_after_commit  # type: ignore[method-assign]
