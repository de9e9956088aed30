"""Reference profiles: what a feature looked like in training or validation data.

A profile is small, versioned JSON: per numeric feature quantiles (the normal-score transform
of the sequential detectors rests on them), histogram bin edges and probabilities, moments,
range and missing rate; per categorical feature the frequencies of the top categories and an
"other" bucket. Built from numpy columns; file reading lives in ``driftline.monitoring.baseline``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

PROFILE_FORMAT = "driftline.profile/v1"
OTHER = "__other__"
N_QUANTILES = 201  # every 0.5%: fine enough for the normal-score transform, ~4 KB a feature
N_BINS = 10  # histogram for the window distances (PSI and friends), deciles of the reference
MAX_CATEGORIES = 50
MAX_DEPENDENCE = 50  # numeric features whose dependence a profile keeps by default


@dataclass(frozen=True)
class NumericProfile:
    count: int
    missing_rate: float
    mean: float
    std: float
    min: float
    max: float
    quantiles: tuple[float, ...]
    bin_edges: tuple[float, ...]
    bin_probs: tuple[float, ...]
    kind: str = "numeric"

    @property
    def quantile_array(self) -> np.ndarray:
        return np.asarray(self.quantiles, dtype=np.float64)


@dataclass(frozen=True)
class CategoricalProfile:
    count: int
    missing_rate: float
    categories: tuple[str, ...]
    probs: tuple[float, ...]  # aligned with categories, then the "other" bucket last
    kind: str = "categorical"

    @property
    def prob_array(self) -> np.ndarray:
        return np.asarray(self.probs, dtype=np.float64)


FeatureProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    model_id: str
    model_version: str
    features: dict[str, FeatureProfile]
    n_rows: int
    created_at: str = ""
    prediction: FeatureProfile | None = None
    label: FeatureProfile | None = None
    performance: dict[str, float] = field(default_factory=dict)
    # what the performance estimate learnt on the labelled reference data: a classifier's
    # P(class | score) (detectors/performance.ScoreCalibration, ClassCalibration per class),
    # a regression's expected error by predicted value (LossModel)
    calibration: dict[str, Any] | None = None
    # each metric's spread over windows of the reference, per row ({"sd": sd over windows of
    # w rows times sqrt(w), "skew": their skewness times sqrt(w)}; "estimated_<metric>" for the
    # estimate's): what sets the window bars
    performance_spread: dict[str, dict[str, float]] = field(default_factory=dict)
    # how the numeric features move together: {"features": [...], "rows": n, "correlation":
    # the upper triangle of their normal scores' correlation matrix, row by row}
    dependence: dict[str, Any] | None = None
    # numeric features' quantiles per time slot (detectors/seasonal.py), when configured
    seasonal: dict[str, Any] | None = None
    # features whose training data follows the clock: {name: "daily" | "weekly"}
    cyclic: dict[str, str] = field(default_factory=dict)

    @functools.cached_property  # a profile never changes (frozen): hashed once
    def version(self) -> str:
        """A content hash: two profiles with the same numbers have the same version."""
        body = orjson.dumps(self._body(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()[:12]

    def _body(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "n_rows": self.n_rows,
            "features": {k: _profile_to_dict(v) for k, v in self.features.items()},
            "prediction": _profile_to_dict(self.prediction) if self.prediction else None,
            "label": _profile_to_dict(self.label) if self.label else None,
            "performance": self.performance,
        } | {key: value for key, value in self._extras().items() if value}

    def _extras(self) -> dict[str, Any]:
        """The optional sections: written only when present, so that a profile without them
        keeps its version."""
        return {
            "calibration": self.calibration,
            "performance_spread": self.performance_spread,
            "dependence": self.dependence,
            "seasonal": self.seasonal,
            "cyclic": self.cyclic,
        }

    def to_json(self) -> bytes:
        doc = {"format": PROFILE_FORMAT, "version": self.version, "created_at": self.created_at}
        doc.update(self._body())
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_json(cls, data: bytes | str) -> ReferenceProfile:
        doc = orjson.loads(data)
        if doc.get("format") != PROFILE_FORMAT:
            raise ValueError(f"not a driftline profile (format {doc.get('format')!r})")
        return cls(
            model_id=doc["model_id"],
            model_version=str(doc["model_version"]),
            n_rows=int(doc["n_rows"]),
            created_at=doc.get("created_at", ""),
            features={k: _profile_from_dict(v) for k, v in doc["features"].items()},
            prediction=_profile_from_dict(doc["prediction"]) if doc.get("prediction") else None,
            label=_profile_from_dict(doc["label"]) if doc.get("label") else None,
            performance=dict(doc.get("performance") or {}),
            calibration=doc.get("calibration") or None,
            performance_spread=dict(doc.get("performance_spread") or {}),
            dependence=doc.get("dependence") or None,
            seasonal=doc.get("seasonal") or None,
            cyclic=dict(doc.get("cyclic") or {}),
        )


def numeric_profile(values: np.ndarray) -> NumericProfile:
    """Profile one numeric column; NaN counts as missing."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        raise ValueError("a numeric feature needs at least two non-missing reference values")
    quantiles = np.quantile(finite, np.linspace(0.0, 1.0, N_QUANTILES))
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, N_BINS + 1))[1:-1])
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=edges.size + 1)
    return NumericProfile(
        count=int(values.size),
        missing_rate=float(1.0 - finite.size / values.size),
        mean=float(finite.mean()),
        std=float(finite.std(ddof=1)),
        min=float(finite.min()),
        max=float(finite.max()),
        quantiles=tuple(float(q) for q in quantiles),
        bin_edges=tuple(float(e) for e in edges),
        bin_probs=tuple(float(c) for c in counts / counts.sum()),
    )


def categorical_profile(
    values: np.ndarray, max_categories: int = MAX_CATEGORIES
) -> CategoricalProfile:
    """Profile one categorical column; None counts as missing; rare values go to "other"."""
    present = [str(v) for v in values if v is not None]
    if not present:
        raise ValueError("a categorical feature needs at least one non-missing reference value")
    names, counts = np.unique(np.asarray(present, dtype=object), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    top = order[:max_categories]
    other = int(counts[order[max_categories:]].sum())
    total = float(counts.sum())
    return CategoricalProfile(
        count=len(values),
        missing_rate=float(1.0 - len(present) / max(len(values), 1)),
        categories=tuple(str(names[i]) for i in top),
        probs=tuple([float(counts[i]) / total for i in top] + [other / total]),
    )


def build_profile(
    model_id: str,
    model_version: str,
    columns: dict[str, np.ndarray],
    feature_types: dict[str, str],
    prediction: np.ndarray | None = None,
    prediction_type: str = "numeric",
    label: np.ndarray | None = None,
    performance: dict[str, float] | None = None,
    calibration: dict[str, Any] | None = None,
    dependence_features: Sequence[str] | None = None,
) -> ReferenceProfile:
    """Profile each feature (and prediction and label); with ``dependence_features`` (None:
    every numeric feature), also how those move together, for the joint drift detector."""
    features: dict[str, FeatureProfile] = {}
    n_rows = 0
    for name, kind in feature_types.items():
        if name not in columns:
            raise ValueError(f"reference data has no column {name!r}")
        column = columns[name]
        n_rows = max(n_rows, len(column))
        features[name] = (
            numeric_profile(column) if kind == "numeric" else categorical_profile(column)
        )

    def profile_of(values: np.ndarray | None) -> FeatureProfile | None:
        if values is None:
            return None
        if prediction_type == "numeric":
            return numeric_profile(values)
        return categorical_profile(values)

    if dependence_features is None:
        numeric = [f for f, kind in feature_types.items() if kind == "numeric"]
        dependence_features = numeric[:MAX_DEPENDENCE]
    return ReferenceProfile(
        model_id=model_id,
        model_version=model_version,
        dependence=dependence(columns, features, list(dependence_features)),
        features=features,
        n_rows=n_rows,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        prediction=profile_of(prediction),
        label=profile_of(label),
        performance=dict(performance or {}),
        calibration=calibration,
    )


def dependence(
    columns: dict[str, np.ndarray],
    features: dict[str, FeatureProfile],
    names: list[str],
    slots: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """The correlations of the normal scores of ``names`` over the rows where all are
    present (a Gaussian copula's parameters); None for fewer than two features or ten rows.

    With ``slots`` (each row's time slot, e.g. its hour of day), the scores are centred and
    scaled within each slot first: the correlation is then the one between values that happen
    at about the same time, which is what the joint detector measures on the stream (in short
    blocks of consecutive events). Two features on the same daily cycle are correlated over a
    whole day through the cycle alone, but not within an hour.
    """
    from driftline.detectors.cusum import NormalScores  # cusum imports this module

    if len(names) < 2:
        return None
    x = np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in names])
    keep = np.isfinite(x).all(axis=1)
    x = x[keep]
    if x.shape[0] < 10:
        return None
    scores = []
    for c, name in enumerate(names):
        profile = features[name]
        if not isinstance(profile, NumericProfile):
            raise ValueError(f"{name} is not numeric: only numeric features have a dependence")
        scores.append(NormalScores(profile.quantile_array, x.shape[0])(x[:, c], 0))
    z = np.column_stack(scores)
    rows = x.shape[0]
    if slots is not None:
        slot = np.asarray(slots)[keep]
        counts = np.bincount(slot)
        for s in np.flatnonzero(counts > 1):
            mine = slot == s
            z[mine] -= z[mine].mean(axis=0)
            spread = z[mine].std(axis=0)
            z[mine] /= np.where(spread > 0, spread, 1.0)
        rows -= int(np.count_nonzero(counts))  # a degree of freedom per slot's mean
    r = np.corrcoef(z, rowvar=False)
    i, j = np.triu_indices(len(names), 1)
    return {
        "features": list(names),
        "rows": int(rows),
        "correlation": [round(float(v), 6) for v in np.nan_to_num(r[i, j])],
    }


def _profile_to_dict(profile: FeatureProfile) -> dict[str, Any]:
    return dict(profile.__dict__)


def _profile_from_dict(doc: dict[str, Any]) -> FeatureProfile:
    doc = dict(doc)
    kind = doc.get("kind")
    if kind == "numeric":
        for key in ("quantiles", "bin_edges", "bin_probs"):
            doc[key] = tuple(doc[key])
        return NumericProfile(**doc)
    if kind == "categorical":
        doc["categories"] = tuple(doc["categories"])
        doc["probs"] = tuple(doc["probs"])
        return CategoricalProfile(**doc)
    raise ValueError(f"unknown feature profile kind {kind!r}")


@functools.lru_cache(maxsize=1024)
def category_index(categories: tuple[str, ...]) -> dict[str, int]:
    """Each category's bucket, one dict per distinct tuple (detectors and checks share it)."""
    return {c: i for i, c in enumerate(categories)}


def known_codes(index: dict[str, int], values: Sequence[Any]) -> np.ndarray | None:
    """Each value's bucket if every value is in ``index`` (so a str, none missing), else None.

    ``itemgetter`` over the dict looks every value up in C: about 1.3x a ``map`` of
    ``__getitem__`` and twice a generator calling ``get`` with a default.
    """
    if len(values) < 2:  # itemgetter of one key returns the value, not a tuple
        return None
    try:
        found = operator.itemgetter(*values)(index)
    except (KeyError, TypeError):  # another value, or an unhashable one
        return None
    return np.fromiter(found, dtype=np.intp, count=len(values))


def bucket_codes(index: dict[str, int], x: np.ndarray) -> np.ndarray:
    """Bucket index per value; values not in ``index`` (unknown, OTHER) -> ``len(index)``.

    The fast path is ``known_codes``; one unknown value sends the batch to the slow path.
    """
    values = x.tolist()
    codes = known_codes(index, values)
    if codes is not None:
        return codes
    get, other = index.get, len(index)
    return np.fromiter((get(v, other) for v in values), dtype=np.intp, count=len(values))
