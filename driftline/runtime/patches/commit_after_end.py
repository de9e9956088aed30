"""A commit that comes after the transactions were ended still commits its offsets.

Breaks: under exactly_once a stopping worker ends its transactions twice: the app's stop
commits and ends each transaction, then the agent's stream acks its last take and the
consumer's stop commits again, which raised ``IllegalOperation('Not in the middle of a
transaction')`` in aiokafka: the last take's offsets stayed uncommitted and the failed stop
kept the process alive until it was killed.
Fix: Faust's ``commit_transactions`` begins a transaction for a producer that is not in one
before sending it offsets; the rest is Faust's (commit, and begin again unless ending).
Test: tests/integration/test_undecodable_integration.py (a stop right after a take: no error,
and the restart reads on from the last take's end).
Upstream: Faust's consumer ending its transactions once, after the streams closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from driftline.runtime.patches.guard import require

VERIFIED_FAUST = ("0.15.",)
_commit_transactions = faust_aiokafka.Producer.commit_transactions


async def commit_transactions(
    self: faust_aiokafka.Producer,
    tid_to_offset_map: Mapping[str, Mapping[Any, int]],
    group_id: str,
    start_new_transaction: bool = True,
) -> None:
    for transactional_id in tid_to_offset_map:
        producer = self._transaction_producers.get(transactional_id)
        if producer is not None and not producer._txn_manager.is_in_transaction():
            async with self._trn_locks[transactional_id]:
                await producer.begin_transaction()
    await _commit_transactions(self, tid_to_offset_map, group_id, start_new_transaction)


def apply() -> None:
    require("faust-streaming", VERIFIED_FAUST, __name__)
    faust_aiokafka.Producer.commit_transactions = commit_transactions  # type: ignore[method-assign]
