"""river's drift detectors behind driftline's detector protocol.

Reference-free detectors (ADWIN, KSWIN, Page-Hinkley) for numeric streams and error-rate
detectors (DDM, EDDM, HDDM_A, HDDM_W) for a stream of 0/1 prediction errors. Each value is one
Python call into river, so these cost microseconds per value: fine for error streams and low
rates, too slow for a firehose of features (``bench/detection.py`` measures it), where the
reference-based detectors and driftline's vectorised ``page_hinkley`` are the defaults.

Their thresholds are river's own parameters; they do not take a share of the model's
false-alarm budget. State is the pickled river object (river's detectors pickle), which also
keeps KSWIN's random generator so a restored detector continues identically.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from river import drift
from river.drift import binary

from driftline.detectors.base import Verdict, register
from driftline.detectors.profile import FeatureProfile


class _RiverDetector:
    name: ClassVar[str] = ""
    input_kind: ClassVar[str] = "numeric"
    calibrated: ClassVar[bool] = False  # river's own thresholds, not the budget
    factory: ClassVar[Callable[..., Any]]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = {**self.defaults, **params}
        self.reset()

    @classmethod
    def from_reference(cls, profile: FeatureProfile | None, arl: float, **params: Any) -> Any:
        return cls(**params)

    def reset(self) -> None:
        self._river = type(self).factory(**self.params)
        self._n = 0

    def update(self, x: np.ndarray) -> Verdict:
        river, alarms, first, warning = self._river, 0, -1, False
        for i, value in enumerate(np.asarray(x, dtype=np.float64).tolist()):
            river.update(value)
            if river.drift_detected:
                alarms += 1
                if first < 0:
                    first = i
        warning = bool(getattr(river, "warning_detected", False))
        self._n += len(x)
        flag = 1.0 if river.drift_detected else 0.0
        return Verdict(
            statistic=flag,  # river exposes no common statistic: 1 at a detection, else 0
            threshold=1.0,
            drift=alarms > 0,
            warning=warning,
            n_seen=self._n,
            alarms=alarms,
            first_alarm=first,
            peak=1.0 if alarms else flag,
        )

    def state_bytes(self) -> bytes:
        return pickle.dumps((self._n, self._river))

    def restore(self, state: bytes) -> None:
        n, river = pickle.loads(state)
        if type(river) is not type(self._river):
            raise ValueError("state does not match this detector's configuration")
        self._n, self._river = n, river


def _doc(river_name: str, kind: str, example: str) -> str:
    return f"""river's ``{river_name}`` behind the detector protocol ({kind}).

    Parameters
    ----------
    params
        Passed to river's constructor unchanged (see river's documentation).

    Examples
    --------
{example}
    """


_NUMERIC_EXAMPLE = """    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = {cls}()
    >>> x = np.concatenate([rng.normal(0, 1, 1_000), rng.normal(3, 1, 1_000)])
    >>> v = det.update(x)                       # the mean moves at value 1,000
    >>> v.first_alarm, v.alarms
    {expected}"""

_ERROR_EXAMPLE = """    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = {cls}()
    >>> errors = np.concatenate([rng.random(2_000) < 0.1, rng.random(2_000) < 0.5])
    >>> v = det.update(errors.astype(float))    # the error rate jumps at value 2,000
    >>> v.first_alarm, v.alarms
    {expected}"""


def _river_detector(
    cls_name: str,
    name: str,
    factory: Callable[..., Any],
    kind: str,
    expected: str,
    defaults: dict[str, Any] | None = None,
) -> type[_RiverDetector]:
    template = _NUMERIC_EXAMPLE if kind == "numeric" else _ERROR_EXAMPLE
    example = template.format(cls=cls_name, expected=expected)
    what = "numeric stream" if kind == "numeric" else "0/1 error stream"
    cls = type(
        cls_name,
        (_RiverDetector,),
        {
            "name": name,
            "input_kind": kind,
            "factory": staticmethod(factory),
            "defaults": dict(defaults or {}),
            "__doc__": _doc(factory.__name__, what, example),
            "__module__": __name__,
        },
    )
    return register(cls)


# The expected outputs are what river does with its default settings on these seeded
# streams: KSWIN and EDDM signal long before the change (false alarms), which is why they
# are not defaults here.
RiverADWIN = _river_detector("RiverADWIN", "adwin", drift.ADWIN, "numeric", "(1023, 1)")
RiverKSWIN = _river_detector(
    "RiverKSWIN", "kswin", drift.KSWIN, "numeric", "(602, 4)", {"seed": 42}
)
RiverPageHinkley = _river_detector(
    "RiverPageHinkley", "river_page_hinkley", drift.PageHinkley, "numeric", "(1016, 2)"
)
RiverDDM = _river_detector("RiverDDM", "ddm", binary.DDM, "error", "(2008, 1)")
RiverEDDM = _river_detector("RiverEDDM", "eddm", binary.EDDM, "error", "(289, 8)")
RiverHDDMA = _river_detector("RiverHDDMA", "hddm_a", binary.HDDMA, "error", "(2044, 1)")
RiverHDDMW = _river_detector("RiverHDDMW", "hddm_w", binary.HDDMW, "error", "(2014, 3)")
