"""A record batch the Kafka client cannot decode becomes one marked record, not a crash loop.

Breaks: aiokafka decompresses a batch while the consumer iterates it. A codec it cannot read,
or a corrupt payload, raises out of ``getmany`` on every fetch of that offset, so the worker
(Faust's consumer) died at start-up again and again, and so would any plain consumer.
Fix: ``PartitionRecords`` in aiokafka's fetcher is a subclass whose undecodable batches yield
one record at the batch's last offset, without key or value, with a ``driftline.undecodable``
header saying why and which offsets; the position moves past the batch. The worker
dead-letters it (reason ``undecodable_batch``), the delivery loop parks it.
Test: tests/integration/test_undecodable_integration.py. Upstream: aiokafka handing the
consumer a per-batch error with its offsets (so a caller can skip it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from aiokafka.consumer import fetcher

from driftline.runtime.patches.guard import require

log = logging.getLogger(__name__)

HEADER = "driftline.undecodable"
VERIFIED_AIOKAFKA = ("0.14.",)
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_original = fetcher.PartitionRecords


def undecodable_detail(headers: Any) -> str | None:
    """The reason in a marked record's headers (a list of pairs or a mapping), else None."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, dict) else headers
    for key, value in pairs:
        if key == HEADER:
            return bytes(value).decode("utf-8", "replace")
    return None


class _Marker:
    """What aiokafka's fetcher reads of a record, for the batch that did not decode."""

    key = None
    value = None
    checksum = None

    def __init__(self, batch: Any, error: BaseException) -> None:
        self.offset = batch.next_offset - 1
        self.timestamp = getattr(batch, "max_timestamp", -1)
        self.timestamp_type = getattr(batch, "timestamp_type", 0)
        codec = CODECS.get(getattr(batch, "compression_type", -1), "unknown")
        detail = (
            f"offsets {batch.base_offset}-{self.offset}, codec {codec}: "
            f"{type(error).__name__}: {error}"
        )
        self.headers = [(HEADER, detail[:1000].encode())]


class _Batch:
    """A record batch whose iteration turns a decoding failure into one marker record."""

    def __init__(self, tp: Any, batch: Any) -> None:
        self._tp = tp
        self._batch = batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __next__(self) -> Any:  # aiokafka reads a control batch's marker with next()
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        try:
            records = list(self._batch)  # decompression happens here, all or nothing
        except Exception as exc:
            marker = _Marker(self._batch, exc)
            log.error(
                "%s[%d]: a record batch could not be decoded and is skipped (%s)",
                self._tp.topic,
                self._tp.partition,
                marker.headers[0][1].decode(),
            )
            records = [marker]
        return iter(records)


class _Records:
    def __init__(self, tp: Any, records: Any) -> None:
        self._tp = tp
        self._records = records

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> _Batch:
        return _Batch(self._tp, self._records.next_batch())


class TolerantPartitionRecords(_original):  # type: ignore[misc,valid-type]
    def __init__(self, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tp, _Records(tp, records), *args, **kwargs)


def apply() -> None:
    """Install the fix in aiokafka's fetcher (idempotent)."""
    require("aiokafka", VERIFIED_AIOKAFKA, __name__)
    fetcher.PartitionRecords = TolerantPartitionRecords
