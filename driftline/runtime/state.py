"""The worker's table state: one record per model, and each input partition's applied offset.

Faust tables write every assignment to a changelog topic, which restores them after a
restart or a rebalance. The pipeline's keys are gathered into one record per model per run
(``ModelRecords``), and after them the offset the run applied, per input partition
(``position_key``): a restore that has a position record has the models' records before it.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import orjson

from driftline.events.records import compact_json

STATE_TABLE = "detector-state"
JOIN_TABLE = "label-join"


class ModelRecords(MutableMapping[str, bytes]):
    """The pipeline's state keys (``<model>/...``) kept as one table record per model.

    Writes wait in ``writes`` until ``apply()``, which writes each model's record whole. One
    record per model per run makes a run's state change atomic on the changelog: with a
    record per key, a kill -9 while the changelog was being written could leave some
    detectors updated and the applied offsets not, and the replay would count those
    messages twice there.
    """

    def __init__(self, table: MutableMapping[str, bytes]) -> None:
        self.table = table
        self.writes: dict[str, dict[str, bytes | None]] = {}  # None: deleted
        self._parsed: dict[str, tuple[bytes | None, dict[str, bytes]]] = {}

    def model(self, model_id: str) -> dict[str, bytes]:
        raw = self.table.get(model_id)
        cached = self._parsed.get(model_id)
        if cached is not None and cached[0] is raw:
            return cached[1]
        data = {} if raw is None else {k: v.encode("latin-1") for k, v in orjson.loads(raw).items()}
        self._parsed[model_id] = (raw, data)
        return data

    def __getitem__(self, key: str) -> bytes:
        model_id = key.split("/", 1)[0]
        pending = self.writes.get(model_id)
        if pending is not None and key in pending:
            value = pending[key]
            if value is None:
                raise KeyError(key)
            return value
        return self.model(model_id)[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.writes.setdefault(key.split("/", 1)[0], {})[key] = value

    def __delitem__(self, key: str) -> None:  # a retired version's state
        self[key]  # KeyError if absent
        self.writes.setdefault(key.split("/", 1)[0], {})[key] = None

    def __iter__(self) -> Iterator[str]:
        keys = {k for m in self.table if not m.startswith(POSITIONS) for k in self.model(m)}
        for writes in self.writes.values():
            for k, v in writes.items():
                if v is None:
                    keys.discard(k)
                else:
                    keys.add(k)
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def apply(self) -> None:
        for model_id, writes in self.writes.items():
            merged = {**self.model(model_id), **writes}
            data = {k: v for k, v in merged.items() if v is not None}
            # latin-1 maps each byte to one character: any bytes value survives JSON whole
            raw = compact_json({k: v.decode("latin-1") for k, v in data.items()})
            self.table[model_id] = raw
            self._parsed[model_id] = (raw, data)
        self.writes.clear()


POSITIONS = "_positions/"  # table keys of the input partitions' applied offsets


def position_key(topic: str, partition: int) -> str:
    return f"{POSITIONS}{topic}:{partition}"


def applied_positions(table: MutableMapping[str, bytes]) -> dict[tuple[str, int], int]:
    """The next offset to read of each input partition the state has a record of."""
    out = {}
    for key in list(table):
        if isinstance(key, str) and key.startswith(POSITIONS):
            topic, _, partition = key[len(POSITIONS) :].rpartition(":")
            out[(topic, int(partition))] = position_offset(table[key]) + 1
    return out


def position_offset(record: bytes) -> int:
    """The last applied offset a position record holds."""
    return int(orjson.loads(record)["offset"])
