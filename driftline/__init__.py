"""driftline: streaming model monitoring and drift detection on Kafka."""

from driftline.config import Config, ConfigError, load_config
from driftline.events.records import Alert, RetrainingRequest
from driftline.sdk.client import LabelLogger, PredictionLogger

__all__ = [
    "Alert",
    "Config",
    "ConfigError",
    "LabelLogger",
    "PredictionLogger",
    "RetrainingRequest",
    "load_config",
]
__version__ = "0.1.0"
