"""A batch aiokafka cannot decode becomes one marked record (patches/undecodable_batches)."""

from __future__ import annotations

import struct

import crc32c
import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from driftline.runtime.patches import undecodable_batches as undecodable

TP = TopicPartition("preds", 0)
LZ4 = 3
ATTRIBUTES = 21  # a v2 batch: base offset 8, length 4, epoch 4, magic 1, crc 4, attributes 2
CRC = 17


def batch(base_offset: int, n: int, codec: int = 0) -> bytearray:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(n):
        builder.append(i, timestamp=1_000 + i, key=b"m", value=b'{"i": %d}' % i, headers=[])
    raw = builder.build()
    struct.pack_into(">q", raw, 0, base_offset)
    return raw


def resealed(raw: bytearray) -> bytearray:
    """The batch with its CRC computed again (a batch the broker accepted, then tampered)."""
    struct.pack_into(">I", raw, CRC, crc32c.crc32c(bytes(raw[ATTRIBUTES:])))
    return raw


def unknown_codec(raw: bytearray) -> bytearray:
    attributes = struct.unpack_from(">h", raw, ATTRIBUTES)[0]
    struct.pack_into(">h", raw, ATTRIBUTES, (attributes & ~0x07) | 0x05)
    return resealed(raw)


def corrupt_payload(raw: bytearray) -> bytearray:
    raw[-8:] = b"\xff" * 8  # inside the lz4 frame
    return resealed(raw)


def read(*batches: bytearray) -> tuple[list[object], int]:
    undecodable.apply()
    records = fetcher.PartitionRecords(
        TP, MemoryRecords(bytes(b"".join(batches))), [], 0, None, None, True, 0
    )
    return list(records), records.next_fetch_offset


@pytest.mark.parametrize("spoil", [unknown_codec, corrupt_payload])
def test_an_undecodable_batch_is_one_marked_record_and_the_next_batches_follow(spoil) -> None:
    got, position = read(batch(0, 2), spoil(batch(2, 3, codec=LZ4)), batch(5, 2, codec=LZ4))
    offsets = [r.offset for r in got]
    assert offsets == [0, 1, 4, 5, 6]  # the bad batch (2-4) as one record at its last offset
    marker = got[2]
    assert marker.key is None and marker.value is None
    detail = undecodable.undecodable_detail(marker.headers)
    assert detail is not None and detail.startswith("offsets 2-4, codec ")
    assert [r.value for r in got if r is not marker] == [
        b'{"i": 0}',
        b'{"i": 1}',
        b'{"i": 0}',
        b'{"i": 1}',
    ]
    assert position == 7  # the consumer moves on past everything


def test_decodable_batches_carry_no_marker() -> None:
    got, _ = read(batch(0, 3, codec=LZ4))
    assert [undecodable.undecodable_detail(r.headers) for r in got] == [None, None, None]
