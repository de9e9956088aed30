"""Pure drift detectors and reference profiles: numpy in, frozen verdicts out.

Nothing here imports Kafka, Faust, HTTP or metrics libraries (a test enforces it).
"""

from driftline.detectors.base import Detector, Verdict, create, register, registered
from driftline.detectors.categorical import CategoricalCUSUM
from driftline.detectors.cusum import NormalScoreCUSUM
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
    "ReferenceProfile",
    "Verdict",
    "build_profile",
    "create",
    "register",
    "registered",
]
