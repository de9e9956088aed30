"""The configuration against what it names: reference profiles and registered detectors.

``config.py`` checks the file itself (its keys and types, and the names it refers to within
it); this module, the rest: that each model's reference profile exists and reads, that each
detector override names a registered detector for its feature's type, that a regression's
error detector reads numbers, and that performance monitoring has a baseline to compare with.
Every error names the file and the key, as ``ConfigError``.
"""

from __future__ import annotations

from driftline import detectors
from driftline.config import Config, ConfigError
from driftline.detectors.performance import PRIMARY
from driftline.detectors.profile import ReferenceProfile

DEFAULT_DETECTORS = {"numeric": "cusum", "categorical": "categorical_cusum"}


def load_profiles(config: Config) -> dict[str, ReferenceProfile | None]:
    """Each model's reference profile (None where the config names none)."""
    profiles: dict[str, ReferenceProfile | None] = {}
    for model_id in config.models:
        path = config.reference_path(model_id)
        if path is None:
            profiles[model_id] = None
            continue
        try:
            profiles[model_id] = ReferenceProfile.from_json(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(
                f"{config.source}: models.{model_id}.reference: file {path} not found "
                "(create it with `driftline baseline`)"
            ) from None
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"{config.source}: models.{model_id}.reference: {path} is not a valid "
                f"driftline profile: {exc}"
            ) from None
    return profiles


def check(config: Config, profiles: dict[str, ReferenceProfile | None]) -> None:
    """Raise ``ConfigError`` for the first model the profiles or detectors cannot serve."""
    for model_id, model in config.models.items():
        where = f"{config.source}: models.{model_id}"
        for feature, override in model.detectors.items():
            kind = model.features[feature]
            name = override.detector or DEFAULT_DETECTORS[kind]
            accepts = detectors.registered().get(name)
            if accepts is None or accepts.input_kind not in (kind, "any"):
                what = (
                    "is not a registered detector"
                    if accepts is None
                    else f"takes {accepts.input_kind} input, the feature is {kind}"
                )
                raise ConfigError(
                    f"{where}.detectors.{feature}.detector: {name!r} {what}; "
                    f"for {kind} features use one of: {', '.join(choices(kind))}"
                )
        settings = model.performance
        if not settings.enabled:
            continue
        if model.task == "regression" and settings.error_detector not in ("cusum", "adwin"):
            raise ConfigError(
                f"{where}.performance.error_detector: {settings.error_detector} watches 0/1 "
                "errors; a regression's errors are numbers: use adwin (or cusum: windows only)"
            )
        metric = settings.metric or PRIMARY[model.task]
        profile = profiles.get(model_id)
        baseline = (profile.performance if profile else {}).get(metric)
        if baseline is None or baseline != baseline:  # missing, or NaN
            raise ConfigError(
                f"{where}.performance: the reference profile has no baseline {metric} to "
                "compare with (build it with `driftline baseline` from data with a label column)"
            )


def choices(kind: str) -> list[str]:
    """The registered detectors that read features of ``kind``."""
    return sorted(n for n, c in detectors.registered().items() if c.input_kind in (kind, "any"))
