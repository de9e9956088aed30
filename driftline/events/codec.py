"""The batch codec: Kafka message bytes to numpy columns, or dead letters with a reason.

One message carries one event, a row batch ``{"model_id", "events": [...]}`` or a columnar
batch ``{"model_id", "columns": {...}}``. Decoding builds one float64 array per numeric feature
(NaN = missing) and one object array per categorical feature (None = missing) with list-level
numpy conversions, not a Python step per value, where the values have the right types.

Bad input never raises: the whole message, or each bad row of a batch, becomes a
``DeadLetter`` with a reason code and a human detail. A wrong-typed feature value does not
spoil its row: it becomes missing and its row is listed in ``type_errors``, and fields the
model does not declare are kept as per-row masks in ``unknown_fields``: data quality sees both.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from driftline.detectors.profile import bucket_codes, category_index, known_codes

NUMBER_TYPES = (int, float)
# Undeclared fields tracked per message: a producer sending random field names costs a bounded
# amount (the names come from messages, so they are never metric labels either).
MAX_UNKNOWN_FIELDS = 8
_NO_ROWS = np.zeros(0, dtype=np.intp)
_NUMERIC_OK = {int, float, type(None)}
_CATEGORICAL_OK = {str, type(None)}


class Reason:
    """Dead-letter reason codes (the ``reason`` header and the metric label)."""

    OVERSIZE = "oversize"
    UNDECODABLE = "undecodable"
    NON_FINITE = "non_finite"
    SCHEMA = "schema"
    UNKNOWN_MODEL = "unknown_model"
    WRONG_TYPE = "wrong_type"
    # a Kafka record batch the client could not decompress (runtime/patches/undecodable_batches.py)
    UNDECODABLE_BATCH = "undecodable_batch"

    ALL = (OVERSIZE, UNDECODABLE, NON_FINITE, SCHEMA, UNKNOWN_MODEL, WRONG_TYPE, UNDECODABLE_BATCH)


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    detail: str
    payload: bytes  # the original bytes, or the JSON of the one bad row of a batch
    row: int | None = None  # index of the bad row within its batch, None for whole messages


@dataclass(frozen=True)
class ModelSchema:
    """What the codec needs to know of a model: its declared features and their types, and
    the reference's categories of each categorical feature (its values are bucketed as they
    are read)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    numeric_outcome: bool = False  # a regression model: predictions and labels are numbers


@dataclass
class PredictionBatch:
    model_id: str
    model_version: str  # the version of the first row; ``versions`` has each row's
    prediction_ids: list[str]
    timestamps: np.ndarray
    versions: list[str]
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]
    predictions: list[Any]
    scores: list[dict[str, float] | None]
    segments: list[dict[str, str] | None]
    # feature -> indices of the rows whose value had the wrong type (and is now missing)
    type_errors: dict[str, np.ndarray] = field(default_factory=dict)
    # undeclared field -> which rows carry a value for it (at most MAX_UNKNOWN_FIELDS names)
    unknown_fields: dict[str, np.ndarray] = field(default_factory=dict)
    _missing: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    _codes: dict[tuple[str, tuple[str, ...]], np.ndarray] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __len__(self) -> int:
        return len(self.prediction_ids)

    def missing(self, feature: str) -> np.ndarray:
        """Which rows miss a declared feature's value (computed once: the detectors and the
        data-quality checks both ask)."""
        mask = self._missing.get(feature)
        if mask is None:
            if feature in self.numeric:
                mask = np.isnan(self.numeric[feature])
            else:
                mask = self.categorical[feature] == None  # noqa: E711  (elementwise)
            self._missing[feature] = mask
        return mask

    def codes(self, feature: str, categories: tuple[str, ...]) -> np.ndarray:
        """A categorical feature's bucket per row against a reference's categories (the
        others and missing values: ``len(categories)``). Looking strings up is the costly
        part of the categorical checks: done once per batch for the detector and the
        data-quality checks together."""
        key = (feature, categories)
        codes = self._codes.get(key)
        if codes is None:
            index = category_index(categories)
            codes = self._codes[key] = bucket_codes(index, self.categorical[feature])
        return codes

    def add_buckets(
        self, known: Mapping[str, np.ndarray], categories: Mapping[str, tuple[str, ...]]
    ) -> None:
        """Buckets the codec found as it read (a feature's every value a reference category,
        so none is missing)."""
        for name, codes in known.items():
            self._codes[(name, categories[name])] = codes
            self._missing[name] = np.zeros(len(codes), dtype=bool)

    def rows(self, index: np.ndarray) -> PredictionBatch:
        """The batch of rows ``index`` (ascending), in order: one model version's rows."""
        if len(index) == len(self):
            return self
        position = np.full(len(self), -1)
        position[index] = np.arange(len(index))
        type_errors = {}
        for name, where in self.type_errors.items():
            kept = position[where]
            if (kept >= 0).any():
                type_errors[name] = kept[kept >= 0]
        picked = index.tolist()
        return PredictionBatch(
            _missing={k: v[index] for k, v in self._missing.items()},
            _codes={k: v[index] for k, v in self._codes.items()},
            model_id=self.model_id,
            model_version=self.versions[picked[0]],
            prediction_ids=[self.prediction_ids[i] for i in picked],
            timestamps=self.timestamps[index],
            versions=[self.versions[i] for i in picked],
            numeric={k: v[index] for k, v in self.numeric.items()},
            categorical={k: v[index] for k, v in self.categorical.items()},
            predictions=[self.predictions[i] for i in picked],
            scores=[self.scores[i] for i in picked],
            segments=[self.segments[i] for i in picked],
            type_errors=type_errors,
            unknown_fields={k: v[index] for k, v in self.unknown_fields.items()},
        )

    @classmethod
    def merge(cls, batches: Sequence[PredictionBatch]) -> PredictionBatch:
        """One batch from several of the same model, in order (for micro-batching)."""
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        offsets = np.cumsum([0] + [len(b) for b in batches[:-1]])
        type_errors: dict[str, np.ndarray] = {}
        for name in sorted({k for b in batches for k in b.type_errors}):
            parts = [
                b.type_errors[name] + o
                for b, o in zip(batches, offsets, strict=True)
                if name in b.type_errors
            ]
            type_errors[name] = np.concatenate(parts)
        unknown = sorted({k for b in batches for k in b.unknown_fields})[:MAX_UNKNOWN_FIELDS]
        unknown_fields = {
            name: np.concatenate(
                [b.unknown_fields.get(name, np.zeros(len(b), dtype=bool)) for b in batches]
            )
            for name in unknown
        }
        return cls(
            # what every part worked out already (a read's buckets, no value missing)
            _missing=_concatenated([b._missing for b in batches]),
            _codes=_concatenated([b._codes for b in batches]),
            model_id=first.model_id,
            model_version=first.model_version,
            prediction_ids=_joined(b.prediction_ids for b in batches),
            timestamps=np.concatenate([b.timestamps for b in batches]),
            versions=_joined(b.versions for b in batches),
            numeric={k: np.concatenate([b.numeric[k] for b in batches]) for k in first.numeric},
            categorical={
                k: np.concatenate([b.categorical[k] for b in batches]) for k in first.categorical
            },
            predictions=_joined(b.predictions for b in batches),
            scores=_joined(b.scores for b in batches),
            segments=_joined(b.segments for b in batches),
            type_errors=type_errors,
            unknown_fields=unknown_fields,
        )


def _joined(lists: Iterable[list[Any]]) -> list[Any]:
    return list(itertools.chain.from_iterable(lists))


def _concatenated(parts: list[dict[Any, np.ndarray]]) -> dict[Any, np.ndarray]:
    """Each key's arrays joined in order, for the keys every part has."""
    common = set(parts[0]).intersection(*parts[1:])
    return {key: np.concatenate([part[key] for part in parts]) for key in common}


@dataclass
class LabelBatch:
    model_id: str
    prediction_ids: list[str]
    timestamps: np.ndarray
    labels: list[Any]

    def __len__(self) -> int:
        return len(self.prediction_ids)


# Messages of at most this many rows are put into columns together with the rest of their take;
# bigger ones at once (merging many large row lists is slower than concatenating arrays).
DEFER_ROWS_UP_TO = 32


@dataclass
class ValidRows:
    """A message's checked prediction rows, not yet in columns.

    Single-event messages come many to a take: their rows are put into columns together
    (``Decoder.columns_of``), one numpy pass per feature instead of one per event.
    """

    model_id: str
    rows: list[dict[str, Any]]
    ids: list[str]
    stamps: list[float]
    versions: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Decoded:
    batch: PredictionBatch | LabelBatch | ValidRows | None
    dead_letters: list[DeadLetter]
    model_id: str | None = None  # set when the envelope named a configured model


class _RowError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class BatchDecoder:
    """Decodes prediction and label messages for the configured models."""

    def __init__(
        self,
        models: Mapping[str, ModelSchema],
        max_message_bytes: int = 8 * 1024 * 1024,
        max_batch_events: int = 20_000,
    ) -> None:
        self.models = dict(models)
        self.max_message_bytes = max_message_bytes
        self.max_batch_events = max_batch_events

    # -- shared envelope handling -------------------------------------------------------

    def _envelope(self, value: bytes | None) -> tuple[dict[str, Any] | None, DeadLetter | None]:
        raw = value or b""
        if len(raw) > self.max_message_bytes:
            return None, DeadLetter(
                Reason.OVERSIZE,
                f"message of {len(raw)} bytes exceeds max_message_bytes={self.max_message_bytes}",
                raw,
            )
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if _is_json_with_non_finite(raw):
                return None, DeadLetter(
                    Reason.NON_FINITE,
                    "NaN, Infinity or a number beyond the double range (about 1.8e308) in the "
                    "JSON; send null for a missing value",
                    raw,
                )
            return None, DeadLetter(Reason.UNDECODABLE, f"not UTF-8 JSON: {exc}", raw)
        if not isinstance(doc, dict):
            return None, DeadLetter(
                Reason.SCHEMA, f"expected a JSON object, got {type(doc).__name__}", raw
            )
        model_id = doc.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            return None, DeadLetter(Reason.SCHEMA, "model_id: required string is missing", raw)
        if model_id not in self.models:
            return None, DeadLetter(
                Reason.UNKNOWN_MODEL,
                f"model_id {_clip(model_id)!r} is not configured",
                raw,
            )
        return doc, None

    def _rows(
        self, doc: dict[str, Any], raw: bytes
    ) -> tuple[list[dict[str, Any]] | None, DeadLetter | None]:
        """The events of a message as row dicts (a single event is a batch of one)."""
        if "events" in doc:
            events = doc["events"]
            if not isinstance(events, list):
                return None, DeadLetter(Reason.SCHEMA, "events: expected a list", raw)
        elif "columns" in doc:
            try:
                events = _columns_to_rows(doc["columns"])
            except _RowError as exc:
                return None, DeadLetter(exc.reason, exc.detail, raw)
        else:
            return [doc], None
        if len(events) > self.max_batch_events:
            return None, DeadLetter(
                Reason.OVERSIZE,
                f"batch of {len(events)} events exceeds max_batch_events={self.max_batch_events}",
                raw,
            )
        return events, None

    # -- predictions ---------------------------------------------------------------------

    def decode_predictions(self, value: bytes | None) -> Decoded:
        decoded = self.decode_prediction_rows(value)
        if isinstance(decoded.batch, ValidRows):
            decoded.batch = self.columns_of([decoded.batch])
        return decoded

    def decode_prediction_rows(self, value: bytes | None) -> Decoded:
        """As ``decode_predictions``, but a message of rows stays ``ValidRows`` (to be put
        into columns with others); a columnar message is a ``PredictionBatch`` already."""
        raw = value or b""
        doc, bad = self._envelope(value)
        if doc is None:
            return Decoded(None, [bad] if bad else [])
        model_id: str = doc["model_id"]
        default_version = doc.get("model_version")
        if "columns" in doc:
            fast = self._columnar_predictions(doc, model_id, default_version)
            if fast is not None:
                return Decoded(fast, [], model_id)
        rows, bad = self._rows(doc, raw)
        if rows is None:
            return Decoded(None, [bad] if bad else [], model_id)
        result = self._predictions(doc, rows, raw, model_id, default_version)
        result.model_id = model_id
        return result

    def _predictions(
        self,
        doc: dict[str, Any],
        rows: list[Any],
        raw: bytes,
        model_id: str,
        default_version: Any,
    ) -> Decoded:
        single = rows and rows[0] is doc
        good: list[dict[str, Any]] = []
        ids: list[str] = []
        stamps: list[float] = []
        versions: list[str] = []
        dead: list[DeadLetter] = []
        # A single event carries its model_id, which the batch scan leaves to the row check.
        numeric = self.models[model_id].numeric_outcome
        fast = None if single else _fast_prediction_rows(rows, default_version, numeric)
        if fast is not None:
            ids, stamps, versions = fast
            good = rows
            rows = []  # all valid: skip the per-row checks
        for index, row in enumerate(rows):
            try:
                pid, stamp, version = _check_prediction_row(row, model_id, default_version, numeric)
            except _RowError as exc:
                payload = raw if single else _row_bytes(row)
                dead.append(DeadLetter(exc.reason, exc.detail, payload, None if single else index))
                continue
            good.append(row)
            ids.append(pid)
            stamps.append(stamp)
            versions.append(version)
        if not good:
            return Decoded(None, dead)
        valid = ValidRows(model_id, good, ids, stamps, versions)
        if len(valid) > DEFER_ROWS_UP_TO:  # large enough for numpy on its own
            return Decoded(self.columns_of([valid]), dead)
        return Decoded(valid, dead)

    def columns_of(self, parts: Sequence[ValidRows]) -> PredictionBatch:
        """One batch, in columns, of the rows of one model's messages (in order)."""
        first = parts[0]
        if len(parts) == 1:
            good, ids, stamps, versions = first.rows, first.ids, first.stamps, first.versions
        else:
            good = [row for part in parts for row in part.rows]
            ids = [i for part in parts for i in part.ids]
            stamps = [t for part in parts for t in part.stamps]
            versions = [v for part in parts for v in part.versions]
        model_id = first.model_id
        schema = self.models[model_id]
        features = [row["features"] for row in good]
        type_errors: dict[str, np.ndarray] = {}
        numeric = _numeric_columns(features, schema.numeric, type_errors)
        categorical, known = _categorical_lists(
            schema, _categorical_table(features, schema.categorical), type_errors
        )
        declared = set(schema.numeric) | set(schema.categorical)
        seen: set[str] = set()
        for f in features:
            seen.update(f)
        unknown = sorted(seen - declared)[:MAX_UNKNOWN_FIELDS]
        batch = PredictionBatch(
            model_id=model_id,
            model_version=versions[0],
            prediction_ids=ids,
            timestamps=np.asarray(stamps, dtype=np.float64),
            versions=versions,
            numeric=numeric,
            categorical=categorical,
            predictions=[row["prediction"] for row in good],
            scores=[row.get("scores") for row in good],
            segments=[row.get("segment") for row in good],
            type_errors=type_errors,
            unknown_fields={
                name: np.fromiter(
                    (f.get(name) is not None for f in features), dtype=bool, count=len(features)
                )
                for name in unknown
            },
        )
        batch.add_buckets(known, schema.categories)
        return batch

    def _columnar_predictions(
        self, doc: dict[str, Any], model_id: str, default_version: Any
    ) -> PredictionBatch | None:
        """A well-formed columnar batch straight to arrays; None means "check row by row".

        Every check is a scan over a whole column, and feature lists go to numpy in one call:
        no Python step per value. Anything unusual (a bad row, mixed types) returns None and
        the row path names each bad row precisely.
        """
        columns = doc["columns"]
        if not isinstance(columns, dict) or not isinstance(columns.get("features"), dict):
            return None
        if set(columns) - {
            "prediction_id",
            "timestamp",
            "prediction",
            "features",
            "scores",
            "segment",
        }:
            return None
        if not isinstance(default_version, str | int) or isinstance(default_version, bool):
            return None
        ids, stamps = columns.get("prediction_id"), columns.get("timestamp")
        predictions, features = columns.get("prediction"), columns["features"]
        lists = [ids, stamps, predictions, *features.values()]
        lists += [columns[k] for k in ("scores", "segment") if k in columns]
        if not all(isinstance(v, list) for v in lists):
            return None
        assert isinstance(ids, list) and isinstance(stamps, list)
        assert isinstance(predictions, list)
        n = len(ids)
        if n == 0 or n > self.max_batch_events or any(len(v) != n for v in lists):
            return None
        schema = self.models[model_id]
        if not _valid_event_columns(ids, stamps, predictions, schema.numeric_outcome):
            return None
        missing = [None] * n
        type_errors: dict[str, np.ndarray] = {}
        numeric = _numeric_lists(
            schema.numeric, [features.get(n, missing) for n in schema.numeric], type_errors
        )
        categorical, known = _categorical_lists(
            schema, {name: features.get(name, missing) for name in schema.categorical}, type_errors
        )
        version = str(default_version)
        batch = PredictionBatch(
            model_id=model_id,
            model_version=version,
            prediction_ids=ids,
            timestamps=np.asarray(stamps, dtype=np.float64),
            versions=[version] * n,
            numeric=numeric,
            categorical=categorical,
            predictions=predictions,
            scores=columns.get("scores", missing),
            segments=columns.get("segment", missing),
            type_errors=type_errors,
            unknown_fields={
                name: np.fromiter((v is not None for v in features[name]), dtype=bool, count=n)
                for name in sorted(set(features) - set(schema.numeric) - set(schema.categorical))[
                    :MAX_UNKNOWN_FIELDS
                ]
            },
        )
        batch.add_buckets(known, schema.categories)
        return batch

    # -- labels --------------------------------------------------------------------------

    def decode_labels(self, value: bytes | None) -> Decoded:
        raw = value or b""
        doc, bad = self._envelope(value)
        if doc is None:
            return Decoded(None, [bad] if bad else [])
        rows, bad = self._rows(doc, raw)
        if rows is None:
            return Decoded(None, [bad] if bad else [])
        model_id: str = doc["model_id"]
        numeric = self.models[model_id].numeric_outcome
        single = rows and rows[0] is doc
        fast = None if single else _fast_label_rows(rows, numeric)
        if fast is not None:
            return Decoded(LabelBatch(model_id, *fast), [])
        ids: list[str] = []
        stamps: list[float] = []
        labels: list[Any] = []
        dead: list[DeadLetter] = []
        for index, row in enumerate(rows):
            try:
                if not isinstance(row, dict):
                    raise _RowError(Reason.SCHEMA, "event: expected a JSON object")
                _check_model(row, model_id)
                pid = _prediction_id(row)
                stamp = _timestamp(row.get("timestamp"))
                label = _outcome(row, "label", numeric)
            except _RowError as exc:
                payload = raw if single else _row_bytes(row)
                dead.append(DeadLetter(exc.reason, exc.detail, payload, None if single else index))
                continue
            ids.append(pid)
            stamps.append(stamp)
            labels.append(label)
        if not ids:
            return Decoded(None, dead)
        return Decoded(
            LabelBatch(model_id, ids, np.asarray(stamps, dtype=np.float64), labels), dead
        )


# -- row checks ------------------------------------------------------------------------------


def _check_prediction_row(
    row: Any, model_id: str, default_version: Any, numeric: bool = False
) -> tuple[str, float, str]:
    if not isinstance(row, dict):
        raise _RowError(Reason.SCHEMA, "event: expected a JSON object")
    _check_model(row, model_id)
    pid = _prediction_id(row)
    stamp = _timestamp(row.get("timestamp"))
    version = row.get("model_version", default_version)
    if not isinstance(version, str | int) or isinstance(version, bool):
        raise _RowError(Reason.SCHEMA, "model_version: required string is missing")
    features = row.get("features")
    if not isinstance(features, dict):
        raise _RowError(Reason.SCHEMA, "features: expected an object of name -> value")
    _outcome(row, "prediction", numeric)
    return pid, stamp, str(version)


def _check_model(row: dict[str, Any], model_id: str) -> None:
    own = row.get("model_id", model_id)
    if own != model_id:
        raise _RowError(
            Reason.SCHEMA, f"model_id {_clip(str(own))!r} differs from the batch's {model_id!r}"
        )


def _prediction_id(row: dict[str, Any]) -> str:
    pid = row.get("prediction_id")
    if isinstance(pid, str) and pid:
        return pid
    if isinstance(pid, int) and not isinstance(pid, bool):
        return str(pid)
    raise _RowError(Reason.SCHEMA, "prediction_id: required string is missing")


def _outcome(row: dict[str, Any], key: str, numeric: bool = False) -> Any:
    """A prediction or label: a finite number, a class name, or a boolean (``numeric``, a
    regression model's: a finite number)."""
    if key not in row or row[key] is None:
        raise _RowError(Reason.SCHEMA, f"{key}: required value is missing")
    value = row[key]
    if isinstance(value, float) and not math.isfinite(value):
        raise _RowError(Reason.NON_FINITE, f"{key}: must be finite")
    if numeric and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise _RowError(
            Reason.WRONG_TYPE,
            f"{key}: a regression model's {key} is a number, got {_kind(value)}",
        )
    if not isinstance(value, str | int | float | bool):
        raise _RowError(
            Reason.WRONG_TYPE, f"{key}: expected a number or class, got {type(value).__name__}"
        )
    return value


def message_time(value: bytes) -> float | None:
    """When a message's first event happened (epoch seconds), None if it does not say."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    stamp = doc.get("timestamp")
    if isinstance(doc.get("events"), list) and doc["events"]:
        first = doc["events"][0]
        stamp = first.get("timestamp") if isinstance(first, dict) else None
    elif isinstance(doc.get("columns"), dict):
        stamps = doc["columns"].get("timestamp")
        stamp = stamps[0] if isinstance(stamps, list) and stamps else None
    try:
        return _timestamp(stamp)
    except _RowError:
        return None


def _timestamp(value: Any) -> float:
    """RFC 3339 string or epoch seconds, to epoch seconds."""
    if isinstance(value, NUMBER_TYPES) and not isinstance(value, bool):
        stamp = float(value)
        if not math.isfinite(stamp):
            raise _RowError(Reason.NON_FINITE, "timestamp: must be finite")
        return stamp
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise _RowError(Reason.SCHEMA, f"timestamp: {_clip(value)!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise _RowError(Reason.SCHEMA, "timestamp: RFC 3339 needs a UTC offset or Z")
        return parsed.timestamp()
    if value is None:
        raise _RowError(Reason.SCHEMA, "timestamp: required value is missing")
    raise _RowError(Reason.WRONG_TYPE, f"timestamp: expected string or number, got {_kind(value)}")


# -- columns -----------------------------------------------------------------------------------

_get = operator.methodcaller


def _fast_prediction_rows(
    rows: list[Any], default_version: Any, numeric: bool = False
) -> tuple[list[str], list[float], list[str]] | None:
    """Validate a whole batch with column-wise type scans; None means "check row by row".

    The common case (a well-formed batch from the SDK) costs a few C-level passes instead of
    a Python function call per row; anything unusual falls back to the precise per-row path
    that names each bad row.
    """
    if not rows or set(map(type, rows)) != {dict}:
        return None
    ids = list(map(_get("get", "prediction_id"), rows))
    stamps = list(map(_get("get", "timestamp"), rows))
    predictions = list(map(_get("get", "prediction"), rows))
    features = list(map(_get("get", "features"), rows))
    if any("model_id" in row or "model_version" in row for row in rows):
        return None
    if not isinstance(default_version, str | int) or isinstance(default_version, bool):
        return None
    if set(map(type, features)) != {dict}:
        return None
    if not _valid_event_columns(ids, stamps, predictions, numeric):
        return None
    version = str(default_version)
    return ids, [float(t) for t in stamps], [version] * len(rows)


def _fast_label_rows(
    rows: list[Any], numeric: bool
) -> tuple[list[str], np.ndarray, list[Any]] | None:
    """A whole batch of labels checked with column scans; None means "check row by row"."""
    if not rows or set(map(type, rows)) != {dict} or any("model_id" in row for row in rows):
        return None
    ids = list(map(_get("get", "prediction_id"), rows))
    stamps = list(map(_get("get", "timestamp"), rows))
    labels = list(map(_get("get", "label"), rows))
    if not _valid_event_columns(ids, stamps, labels, numeric):
        return None
    return ids, np.asarray(stamps, dtype=np.float64), labels


def _is_float(value: Any) -> bool:
    return type(value) is float


def _valid_event_columns(
    ids: list[Any], stamps: list[Any], predictions: list[Any], numeric: bool = False
) -> bool:
    """Every id a non-empty string, every timestamp a number, every prediction a finite
    number, a class name or a boolean (``numeric``: a finite number): checked with a few
    C-level scans per column."""
    if set(map(type, ids)) != {str} or not all(ids):
        return False
    if not set(map(type, stamps)) <= {float, int}:
        return False
    kinds = set(map(type, predictions))
    if not kinds <= ({float, int} if numeric else {float, int, str, bool}):
        return False
    if float not in kinds:
        return True
    if kinds == {float}:  # the usual regression or score batch: one numpy pass
        return bool(np.isfinite(np.array(predictions, dtype=np.float64)).all())
    return all(map(math.isfinite, filter(_is_float, predictions)))


def _feature_table(features: list[dict[str, Any]], names: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Rows of the named features' values (None where absent)."""
    try:  # every row has every feature: picked in C, 2.5x a get per value
        pick = operator.itemgetter(*names)
        return list(map(pick, features)) if len(names) > 1 else [(pick(f),) for f in features]
    except KeyError:
        return [tuple(map(f.get, names)) for f in features]


def _numeric_columns(
    features: list[dict[str, Any]], names: tuple[str, ...], type_errors: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    if not names:
        return {}
    table = _feature_table(features, names)
    matrix = _number_matrix(table)
    if matrix is not None:
        return _named_rows(np.ascontiguousarray(matrix.T), names, type_errors)
    pairs = ((name, [row[j] for row in table]) for j, name in enumerate(names))
    return _each_column(pairs, _numeric_column, type_errors)


def _numeric_lists(
    names: tuple[str, ...], lists: list[list[Any]], type_errors: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The named columns of a columnar batch: one numpy call for all of them when every
    value is a number or null (a call per column cost a fifth of the codec's time)."""
    if not names:
        return {}
    matrix = _number_matrix(lists)
    if matrix is not None:
        return _named_rows(matrix, names, type_errors)
    return _each_column(zip(names, lists, strict=True), _numeric_column, type_errors)


def _number_matrix(table: Sequence[Sequence[Any]]) -> np.ndarray | None:
    """``table`` as a float64 matrix (NaN for null) if every value is a number or null.

    numpy finds the common type as it converts: a number type means no null, string or
    nested value, so only booleans (read as 0 and 1) need a look, and only where a 0 or a 1
    came out. That is half the cost of scanning every value's type first, which is left
    for tables with nulls.
    """
    try:
        matrix = np.array(table)
    except (ValueError, TypeError, OverflowError):  # ragged nesting and the like
        return None
    if matrix.ndim == 2 and matrix.dtype.kind in "fi":
        n = matrix.shape[1]
        flat = matrix.ravel()
        zeros_and_ones = np.flatnonzero((flat == 0) | (flat == 1)).tolist()
        if not any(type(table[i // n][i % n]) is bool for i in zeros_and_ones):
            return matrix.astype(np.float64, copy=False)
        return None
    if set(map(type, itertools.chain.from_iterable(table))) <= _NUMERIC_OK:
        return np.array(table, dtype=np.float64)
    return None


def _named_rows(
    matrix: np.ndarray, names: tuple[str, ...], type_errors: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Row j of ``matrix`` as feature ``names[j]``'s column, infinities made missing."""
    bad = np.isinf(matrix)
    if bad.any():  # only overflowing literals (1e999): JSON has no Infinity
        for j in np.flatnonzero(bad.any(axis=1)).tolist():
            type_errors[names[j]] = np.flatnonzero(bad[j])
        matrix[bad] = np.nan
    return dict(zip(names, matrix, strict=True))


def _categorical_table(
    features: list[dict[str, Any]], names: tuple[str, ...]
) -> dict[str, Sequence[Any]]:
    """Each named feature's values over the rows (None where absent)."""
    if not names:
        return {}
    return dict(zip(names, zip(*_feature_table(features, names), strict=True), strict=True))


def _each_column(
    columns: Iterable[tuple[str, list[Any]]],
    convert: Callable[[list[Any]], tuple[np.ndarray, np.ndarray]],
    type_errors: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Convert each named list of values, noting the rows of wrong-typed values per name."""
    out = {}
    for name, values in columns:
        out[name], errors = convert(values)
        if errors.size:
            type_errors[name] = errors
    return out


def _numeric_column(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """float64 column, NaN for missing; wrong-typed values become NaN, their rows returned."""
    wrong = np.zeros(len(values), dtype=bool)
    if set(map(type, values)) <= _NUMERIC_OK:
        column = np.array(values, dtype=np.float64)  # None -> NaN in one C loop
    else:
        ok = [v if type(v) in (int, float) else None for v in values]
        wrong = np.fromiter(
            (v is not None and kept is None for v, kept in zip(values, ok, strict=True)),
            dtype=bool,
            count=len(values),
        )
        column = np.array(ok, dtype=np.float64)
    if np.isinf(column).any():
        # Only overflowing literals (1e999) get here: JSON has no NaN or Infinity.
        bad = np.isinf(column)
        wrong |= bad
        column[bad] = np.nan
    return column, np.flatnonzero(wrong)


def _categorical_lists(
    schema: ModelSchema,
    table: Mapping[str, Sequence[Any]],
    type_errors: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The categorical columns of a table of values, and the buckets of those whose every
    value is one of the reference's categories.

    Looking each value up in the categories' index is the bucketing the detector and the
    checks need anyway, and it proves the column clean: only a str can equal a category, so
    no type scan and no missing value. A column with anything else takes the general path.
    """
    columns: dict[str, np.ndarray] = {}
    known: dict[str, np.ndarray] = {}
    for name, values in table.items():
        categories = schema.categories.get(name)
        codes = known_codes(category_index(categories), values) if categories else None
        if codes is not None:
            known[name] = codes
            columns[name] = _category_array(categories)[codes]  # the same strings
            continue
        columns[name], errors = _categorical_column(values)
        if errors.size:
            type_errors[name] = errors
    return columns, known


@functools.lru_cache(maxsize=1024)
def _category_array(categories: tuple[str, ...]) -> np.ndarray:
    """The categories as an object array: indexed by buckets, it rebuilds a clean column
    (2.5x faster than converting the message's list)."""
    array = np.array(categories, dtype=object)
    array.setflags(write=False)  # shared: only ever indexed
    return array


def _categorical_column(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """object column of str, None for missing; ints and bools are read as their text."""
    kinds = set(map(type, values))
    if kinds <= _CATEGORICAL_OK:
        return np.array(values, dtype=object), _NO_ROWS
    out = np.empty(len(values), dtype=object)
    errors = []
    for i, v in enumerate(values):
        if v is None or isinstance(v, str):
            out[i] = v
        elif isinstance(v, bool):
            out[i] = "true" if v else "false"
        elif isinstance(v, int):
            out[i] = str(v)
        else:
            out[i] = None
            errors.append(i)
    return out, np.asarray(errors, dtype=np.intp)


def _columns_to_rows(columns: Any) -> list[dict[str, Any]]:
    """Columnar form to row dicts; lengths are checked once for the whole batch."""
    if not isinstance(columns, dict):
        raise _RowError(Reason.SCHEMA, "columns: expected an object of name -> list")
    features = columns.get("features", {})
    if not isinstance(features, dict):
        raise _RowError(Reason.SCHEMA, "columns.features: expected an object of name -> list")
    lists: dict[str, Sequence[Any]] = {k: v for k, v in columns.items() if k != "features"}
    lengths = {len(v) for v in [*lists.values(), *features.values()] if isinstance(v, list)}
    not_lists = [k for k, v in [*lists.items(), *features.items()] if not isinstance(v, list)]
    if not_lists:
        raise _RowError(Reason.SCHEMA, f"columns.{not_lists[0]}: expected a list")
    if len(lengths) > 1:
        raise _RowError(Reason.SCHEMA, f"columns: lists of different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    names = list(features)
    feature_lists = [features[k] for k in names]
    top = list(lists)
    top_lists = [lists[k] for k in top]
    rows = []
    for i in range(n):
        row = {k: col[i] for k, col in zip(top, top_lists, strict=True)}
        row["features"] = {k: col[i] for k, col in zip(names, feature_lists, strict=True)}
        rows.append(row)
    return rows


def _is_json_with_non_finite(raw: bytes) -> bool:
    """Whether JSON that orjson refused is valid but for NaN, Infinity or a number that is
    infinite as a double (Python's parser takes all three)."""

    def reject(_: str) -> None:
        raise ValueError

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError
        return value

    try:
        json.loads(raw)
    except (ValueError, RecursionError):  # nested deeper than orjson's limit (1024) too
        return False
    try:
        json.loads(raw, parse_constant=reject, parse_float=finite, parse_int=_finite_int)
    except ValueError:
        return True
    return False


def _finite_int(text: str) -> int:
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise ValueError from None
    return value


def _row_bytes(row: Any) -> bytes:
    try:
        return orjson.dumps(row)
    except TypeError:
        return repr(row).encode()


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _kind(value: object) -> str:
    return type(value).__name__
