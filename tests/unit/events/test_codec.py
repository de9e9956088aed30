from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.events.codec import (
    BatchDecoder,
    DeadLetter,
    LabelBatch,
    ModelSchema,
    PredictionBatch,
    Reason,
)
from driftline.runtime.agent import dead_letter_record

SCHEMA = {"m": ModelSchema(numeric=("a", "b"), categorical=("c",))}


def row(i: int, **over: object) -> dict:
    base = {
        "prediction_id": f"p{i}",
        "timestamp": 1000.0 + i,
        "features": {"a": float(i), "b": i, "c": "x"},
        "prediction": 0.5,
    }
    base.update(over)
    return base


def columnar(rows: list[dict], names: tuple[str, ...], version: object = "1") -> bytes:
    """The columnar message of ``rows`` (features not in a row are null)."""
    return orjson.dumps(
        {
            "model_id": "m",
            "model_version": version,
            "columns": {
                "prediction_id": [r["prediction_id"] for r in rows],
                "timestamp": [r["timestamp"] for r in rows],
                "prediction": [r["prediction"] for r in rows],
                "features": {k: [r["features"].get(k) for r in rows] for k in names},
            },
        }
    )


def decode(value: bytes, **kw: int):
    return BatchDecoder(SCHEMA, **kw).decode_predictions(value)


def test_row_batch_becomes_numpy_columns() -> None:
    rows = [row(i) for i in range(5)]
    rows[2]["features"] = {"a": None, "c": None, "zzz": 1}
    out = decode(orjson.dumps({"model_id": "m", "model_version": "3", "events": rows}))
    batch = out.batch
    assert isinstance(batch, PredictionBatch) and not out.dead_letters
    assert batch.numeric["a"].dtype == np.float64
    assert np.isnan(batch.numeric["a"][2]) and np.isnan(batch.numeric["b"][2])
    assert batch.numeric["b"].tolist()[:2] == [0.0, 1.0]
    assert batch.categorical["c"].tolist() == ["x", "x", None, "x", "x"]
    assert batch.model_version == "3"
    assert {k: v.tolist() for k, v in batch.unknown_fields.items()} == {
        "zzz": [False, False, True, False, False]
    }
    assert batch.timestamps.tolist() == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]


def test_columnar_batch_equals_row_batch() -> None:
    rows = [row(i) for i in range(4)]
    columnar = {
        "model_id": "m",
        "model_version": "1",
        "columns": {
            "prediction_id": [r["prediction_id"] for r in rows],
            "timestamp": [r["timestamp"] for r in rows],
            "prediction": [r["prediction"] for r in rows],
            "features": {k: [r["features"][k] for r in rows] for k in ("a", "b", "c")},
        },
    }
    a = decode(orjson.dumps(columnar)).batch
    b = decode(orjson.dumps({"model_id": "m", "model_version": "1", "events": rows})).batch
    assert a is not None and b is not None
    assert a.prediction_ids == b.prediction_ids
    for k in ("a", "b"):
        np.testing.assert_array_equal(a.numeric[k], b.numeric[k])
    assert a.categorical["c"].tolist() == b.categorical["c"].tolist()


def test_columnar_fast_path_matches_rows_with_missing_and_wrong_types() -> None:
    rows = [row(i) for i in range(6)]
    rows[1]["features"] = {"a": "oops", "b": None, "c": 5}
    rows[4]["features"] = {"a": 1.5, "c": "y", "extra": 1}
    fast = decode(columnar(rows, ("a", "b", "c", "extra"), version=2)).batch
    slow = decode(orjson.dumps({"model_id": "m", "model_version": 2, "events": rows})).batch
    assert fast is not None and slow is not None
    for k in ("a", "b"):
        np.testing.assert_array_equal(fast.numeric[k], slow.numeric[k])
    assert fast.categorical["c"].tolist() == slow.categorical["c"].tolist()

    def rows_of(named: dict[str, np.ndarray]) -> dict[str, list[int]]:
        return {
            k: np.flatnonzero(v).tolist() if v.dtype == bool else v.tolist()
            for k, v in named.items()
        }

    assert rows_of(fast.type_errors) == rows_of(slow.type_errors)
    assert rows_of(fast.unknown_fields) == rows_of(slow.unknown_fields)
    assert list(fast.type_errors) == ["a"] and list(fast.unknown_fields) == ["extra"]
    assert fast.versions == ["2"] * 6 and fast.prediction_ids == slow.prediction_ids


def test_columnar_batch_with_a_bad_row_names_that_row() -> None:
    columnar = {
        "model_id": "m",
        "model_version": "1",
        "columns": {
            "prediction_id": ["a", "b", "c"],
            "timestamp": [1, "not a time", 3],
            "prediction": [1, 2, 3],
            "features": {"a": [1.0, 2.0, 3.0]},
        },
    }
    out = decode(orjson.dumps(columnar))
    assert out.batch is not None and out.batch.prediction_ids == ["a", "c"]
    assert [(d.row, d.reason) for d in out.dead_letters] == [(1, Reason.SCHEMA)]


def test_rfc3339_and_epoch_timestamps() -> None:
    out = decode(
        orjson.dumps(
            {"model_id": "m", "model_version": "1", **row(0, timestamp="2026-01-02T03:04:05Z")}
        )
    )
    assert out.batch is not None
    assert out.batch.timestamps[0] == 1767323045.0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00garbage", Reason.UNDECODABLE),
        (b"[1, 2]", Reason.SCHEMA),
        (b'{"events": []}', Reason.SCHEMA),
        (orjson.dumps({"model_id": "other", **row(0)}), Reason.UNKNOWN_MODEL),
        (
            b'{"model_id": "m", "model_version": "1", "prediction_id": "p", "timestamp": 1,'
            b' "features": {"a": Infinity}, "prediction": 1}',
            Reason.NON_FINITE,
        ),
        (
            orjson.dumps({"model_id": "m", "model_version": "1", **row(0, prediction=[1])}),
            Reason.WRONG_TYPE,
        ),
        (
            orjson.dumps({"model_id": "m", "model_version": "1", **row(0, features=[1, 2])}),
            Reason.SCHEMA,
        ),
        (orjson.dumps({"model_id": "m", "model_version": "1", "events": {"a": 1}}), Reason.SCHEMA),
        (
            orjson.dumps(
                {"model_id": "m", "columns": {"prediction_id": ["a"], "timestamp": [1, 2]}}
            ),
            Reason.SCHEMA,
        ),
        # nested beyond orjson's depth limit: the NaN check's fallback parser overflowed the
        # stack there (RecursionError)
        (b"[" * 5_000 + b"]" * 5_000, Reason.UNDECODABLE),
    ],
)
def test_bad_messages_are_dead_letters_with_reason(value: bytes, reason: str) -> None:
    out = decode(value)
    assert out.batch is None
    assert [d.reason for d in out.dead_letters] == [reason]
    assert out.dead_letters[0].payload == value and out.dead_letters[0].detail


def test_oversize_by_bytes_and_by_events() -> None:
    rows = [row(i) for i in range(50)]
    value = orjson.dumps({"model_id": "m", "model_version": "1", "events": rows})
    assert decode(value, max_message_bytes=1024).dead_letters[0].reason == Reason.OVERSIZE
    assert decode(value, max_batch_events=10).dead_letters[0].reason == Reason.OVERSIZE
    assert decode(value).batch is not None


def test_partly_bad_batch_keeps_good_rows_and_names_bad_ones() -> None:
    rows = [row(0), row(1, timestamp=None), row(2), row(3, prediction=math.inf), "junk"]
    value = orjson.dumps(
        {"model_id": "m", "model_version": "1", "events": rows},
        option=orjson.OPT_PASSTHROUGH_DATACLASS,
    )
    out = decode(value)
    assert out.batch is not None and out.batch.prediction_ids == ["p0", "p2"]
    assert [(d.row, d.reason) for d in out.dead_letters] == [
        (1, Reason.SCHEMA),
        (3, Reason.SCHEMA),
        (4, Reason.SCHEMA),
    ]
    assert orjson.loads(out.dead_letters[0].payload)["prediction_id"] == "p1"


def test_wrong_typed_feature_becomes_missing_and_is_counted() -> None:
    rows = [row(0), row(1, features={"a": "12.5", "b": True, "c": 7}), row(2)]
    out = decode(orjson.dumps({"model_id": "m", "model_version": "1", "events": rows}))
    batch = out.batch
    assert batch is not None and not out.dead_letters
    assert np.isnan(batch.numeric["a"][1]) and np.isnan(batch.numeric["b"][1])
    assert batch.categorical["c"][1] == "7"  # an int category is read as its text
    assert {k: v.tolist() for k, v in batch.type_errors.items()} == {"a": [1], "b": [1]}


def test_labels_decode_and_reject() -> None:
    decoder = BatchDecoder(SCHEMA)
    out = decoder.decode_labels(
        orjson.dumps(
            {
                "model_id": "m",
                "events": [
                    {"prediction_id": "p1", "timestamp": 5, "label": 1},
                    {"prediction_id": "p2", "timestamp": 6},
                ],
            }
        )
    )
    assert isinstance(out.batch, LabelBatch) and out.batch.labels == [1]
    assert [(d.row, d.reason) for d in out.dead_letters] == [(1, Reason.SCHEMA)]


def test_a_dead_letter_over_the_producer_limit_is_cut_and_says_its_size() -> None:
    big = DeadLetter(Reason.OVERSIZE, "too big", b"x" * 5_000)
    value, headers = dead_letter_record(big, "t", 2, 41, limit=1_024)
    assert value == b"x" * 1_024
    assert dict(headers)["payload.truncated_from"] == b"5000"
    assert dict(headers)["source.offset"] == b"41" and dict(headers)["reason"] == b"oversize"
    row = DeadLetter(Reason.SCHEMA, "bad row", b'{"a": 1}', row=3)
    value, headers = dead_letter_record(row, "t", 0, 7, limit=1_024)
    assert value == b'{"a": 1}' and dict(headers)["source.row"] == b"3"
    assert "payload.truncated_from" not in dict(headers)


numeric_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, 1, 0.0, 1.0, True, False, None, "1.5", "x", [1.0], {}]),
)


@settings(max_examples=300, deadline=None)
@given(
    table=st.integers(1, 6).flatmap(
        lambda n: st.lists(st.lists(numeric_values, min_size=n, max_size=n), min_size=2, max_size=2)
    )
)
def test_columnar_numbers_read_as_value_by_value(table: list[list[object]]) -> None:
    """Columnar batches convert all numeric features in one numpy call; booleans, strings,
    nested values must still be wrong types and None missing, exactly as row by row."""
    n = len(table[0])
    rows = [row(i, features={"a": table[0][i], "b": table[1][i], "c": "x"}) for i in range(n)]
    fast = decode(columnar(rows, ("a", "b", "c"))).batch
    slow = decode(orjson.dumps({"model_id": "m", "model_version": "1", "events": rows})).batch
    assert isinstance(fast, PredictionBatch) and isinstance(slow, PredictionBatch)
    for k, values in zip(("a", "b"), table, strict=True):
        want = [
            float(v) if type(v) in (int, float) else math.nan  # the declared semantics
            for v in values
        ]
        np.testing.assert_array_equal(fast.numeric[k], np.array(want))
        np.testing.assert_array_equal(fast.numeric[k], slow.numeric[k])
        wrong = [i for i, v in enumerate(values) if v is not None and type(v) not in (int, float)]
        assert fast.type_errors.get(k, np.zeros(0)).tolist() == wrong
        assert slow.type_errors.get(k, np.zeros(0)).tolist() == wrong


@pytest.mark.parametrize("form", ["columns", "events"])
def test_a_categorical_column_of_reference_categories_is_bucketed_as_it_is_read(
    form: str,
) -> None:
    cats = ("x", "y")
    decoder = BatchDecoder({"m": ModelSchema(("a", "b"), ("c",), categories={"c": cats})})
    clean = [row(i, features={"a": 1.0, "b": 2, "c": "xy"[i % 2]}) for i in range(6)]
    other = [row(i, features={"a": 1.0, "b": 2, "c": c}) for i, c in enumerate(["x", "z", None])]
    odd = [row(i, features={"a": 1.0, "b": 2, "c": c}) for i, c in enumerate(["x", 7, ["y"]])]
    batches = []
    for rows in (clean, other, odd):
        if form == "columns":
            message = columnar(rows, ("a", "b", "c"))
        else:
            message = orjson.dumps({"model_id": "m", "model_version": "1", "events": rows})
        out = decoder.decode_predictions(message)
        assert isinstance(out.batch, PredictionBatch)
        batches.append(out.batch)
    # only the clean column was bucketed as it was read; each gives the buckets and missing
    # values computed from its column, and so do they merged
    assert [("c", cats) in b._codes for b in batches] == [True, False, False]
    assert batches[2].categorical["c"].tolist() == ["x", "7", None]  # an int read as its text
    assert batches[2].type_errors["c"].tolist() == [2]
    merged = PredictionBatch.merge(batches)
    for batch in (*batches, merged):
        column = batch.categorical["c"]
        expected = [cats.index(v) if v in cats else len(cats) for v in column]
        assert batch.codes("c", cats).tolist() == expected
        assert batch.missing("c").tolist() == [v is None for v in column]
    assert merged.codes("c", cats).tolist()[:6] == [0, 1] * 3


REGRESSION = {"m": ModelSchema(numeric=("a", "b"), categorical=("c",), numeric_outcome=True)}


@pytest.mark.parametrize("form", ["single", "rows", "columns"])
def test_a_regression_model_takes_only_numbers_as_predictions(form: str) -> None:
    rows = [row(0), row(1, prediction="abc"), row(2, prediction=True)]
    if form == "single":
        messages = [orjson.dumps({"model_id": "m", "model_version": "1", **r}) for r in rows]
    elif form == "rows":
        messages = [orjson.dumps({"model_id": "m", "model_version": "1", "events": rows})]
    else:
        messages = [columnar(rows, ("a", "b", "c"))]
    decoder = BatchDecoder(REGRESSION)
    dead = [d for m in messages for d in decoder.decode_predictions(m).dead_letters]
    assert [d.reason for d in dead] == [Reason.WRONG_TYPE] * 2
    assert "a regression model's prediction is a number" in dead[0].detail
    # a classifier's class names stay valid
    assert BatchDecoder(SCHEMA).decode_predictions(messages[-1]).dead_letters == []


def test_a_regression_label_must_be_a_number() -> None:
    message = orjson.dumps(
        {"model_id": "m", "events": [{"prediction_id": "p", "timestamp": 1, "label": "x"}]}
    )
    (dead,) = BatchDecoder(REGRESSION).decode_labels(message).dead_letters
    assert dead.reason == Reason.WRONG_TYPE


@pytest.mark.parametrize("number", [b"1e400", b"-1e999", b"1" + b"0" * 400])
def test_a_number_beyond_double_range_is_non_finite(number: bytes) -> None:
    message = (
        b'{"model_id": "m", "model_version": "1", "prediction_id": "p", "timestamp": 1,'
        b' "features": {"a": ' + number + b'}, "prediction": 1}'
    )
    (dead,) = BatchDecoder(SCHEMA).decode_predictions(message).dead_letters
    assert dead.reason == Reason.NON_FINITE and "double range" in dead.detail
