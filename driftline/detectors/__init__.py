"""Pure drift detectors and reference profiles: numpy in, frozen verdicts out.

Nothing here imports Kafka, Faust, HTTP or metrics libraries (a test enforces it).
"""

from driftline.detectors import kswin as _kswin  # noqa: F401  (registers)
from driftline.detectors import river_backed as _river_backed  # noqa: F401  (registers)
from driftline.detectors import window as _window  # noqa: F401  (registers the distances)
from driftline.detectors.base import Detector, Verdict, create, register, registered
from driftline.detectors.categorical import CategoricalCUSUM
from driftline.detectors.cusum import NormalScoreCUSUM
from driftline.detectors.page_hinkley import PageHinkley
from driftline.detectors.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
)

__all__ = [
    "CategoricalCUSUM",
    "CategoricalProfile",
    "Detector",
    "FeatureProfile",
    "NormalScoreCUSUM",
    "NumericProfile",
    "PageHinkley",
    "ReferenceProfile",
    "Verdict",
    "build_profile",
    "create",
    "register",
    "registered",
]
