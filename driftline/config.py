"""The YAML configuration: models, Kafka, topics, worker; validated once at start.

Errors name the file, the key and what was expected (``ConfigError``). Secrets are never
written in the file: a key ending in ``_env`` names the environment variable that holds the
secret, and the value is kept as a ``SecretStr`` so it cannot leak into logs or reprs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

FeatureType = Literal["numeric", "categorical"]
Task = Literal["binary", "multiclass", "regression"]


class ConfigError(ValueError):
    """A configuration problem, worded as ``file: key: expectation``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Strict):
    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password_env: str | None = None
    ssl_cafile: str | None = None
    # Resolved from sasl_password_env at load time; never read from the file itself.
    sasl_password: SecretStr | None = Field(default=None, exclude=True)


class TopicSettings(_Strict):
    prefix: str = "driftline."
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1, description="3 in production")

    def name(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    @property
    def predictions(self) -> str:
        return self.name("predictions")

    @property
    def labels(self) -> str:
        return self.name("labels")

    @property
    def alerts(self) -> str:
        return self.name("alerts")

    @property
    def retraining_requests(self) -> str:
        return self.name("retraining-requests")

    @property
    def dead_letter(self) -> str:
        return self.name("dead-letter")

    @property
    def profiles(self) -> str:
        return self.name("profiles")


class WorkerSettings(_Strict):
    app_id: str = "driftline"
    max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=20_000, ge=1)
    # Messages taken from the stream at once and run through the detectors together: this
    # is what makes single-event messages affordable (see DESIGN.md, Batches).
    # 200 messages of 500 events hold ~40 MB of raw JSON; more buys nothing measurable.
    micro_batch_messages: int = Field(default=200, ge=1)
    # 100 ms: single-event messages ran at 1,366 events/s with 20 ms and 1,854 with 100 ms;
    # 250 ms added little (1,872) for more latency (bench/throughput.py --sweep, one run).
    micro_batch_linger_ms: float = Field(default=100.0, ge=0)
    # Bounds the temporaries of one detector call (8 CUSUM rows x events); speed was the same
    # within this machine's noise from 4,096 to unbounded (bench/throughput.py --sweep).
    merge_events: int = Field(default=4096, ge=1, description="events per detector call")
    metrics_port: int = Field(default=9464, ge=0, le=65535, description="0 disables")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    data_dir: str = ".driftline/worker"


class AlertSettings(_Strict):
    resolve_after_events: int = Field(
        default=2000, ge=1, description="clean events on a feature before a drift alert resolves"
    )


class DetectorOverride(_Strict):
    detector: str | None = None
    false_alarm_budget: float | None = Field(default=None, gt=1)
    params: dict[str, float] = Field(default_factory=dict)


class ModelConfig(_Strict):
    task: Task
    features: dict[str, FeatureType]
    reference: str | None = Field(default=None, description="reference profile JSON path")
    false_alarm_budget: float = Field(
        default=1_000_000, gt=1, description="expected events between false alarms, whole model"
    )
    detectors: dict[str, DetectorOverride] = Field(default_factory=dict)

    @field_validator("features")
    @classmethod
    def _some_features(cls, value: dict[str, FeatureType]) -> dict[str, FeatureType]:
        if not value:
            raise ValueError("declare at least one feature")
        return value


class Config(_Strict):
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    worker: WorkerSettings = WorkerSettings()
    alerts: AlertSettings = AlertSettings()
    models: dict[str, ModelConfig]
    source: str = Field(default="<memory>", exclude=True)

    def reference_path(self, model_id: str) -> Path | None:
        ref = self.models[model_id].reference
        if ref is None:
            return None
        path = Path(ref)
        if not path.is_absolute() and self.source != "<memory>":
            path = Path(self.source).parent / path
        return path


def load_config(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Config:
    """Read, validate and resolve a config file; raise ``ConfigError`` naming file and key."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return config_from_dict(raw, source=source, env=env)


def config_from_dict(
    raw: Any, source: str = "<memory>", env: dict[str, str] | None = None
) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {_kind(raw)}")
    env = dict(os.environ) if env is None else env
    try:
        config = Config.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc)) from None
    kafka = config.kafka
    if kafka.sasl_password_env:
        secret = env.get(kafka.sasl_password_env)
        if secret is None:
            raise ConfigError(
                f"{source}: kafka.sasl_password_env: environment variable "
                f"{kafka.sasl_password_env} is not set"
            )
        kafka = kafka.model_copy(update={"sasl_password": SecretStr(secret)})
        config = config.model_copy(update={"kafka": kafka})
    for model_id, model in config.models.items():
        for feature in model.detectors:
            if feature not in model.features:
                raise ConfigError(
                    f"{source}: models.{model_id}.detectors.{feature}: not a declared feature "
                    f"(declared: {', '.join(model.features)})"
                )
    return config


def _describe(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def _kind(value: object) -> str:
    return "nothing (empty file)" if value is None else type(value).__name__
