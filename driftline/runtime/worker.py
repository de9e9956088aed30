"""``driftline worker``: create topics, serve metrics, run the Faust app until stopped."""

from __future__ import annotations

import gc
import logging
import tempfile
from pathlib import Path

import faust
from prometheus_client import start_http_server

from driftline.config import Config, ConfigError
from driftline.monitoring.pipeline import Pipeline
from driftline.observability.client_logs import ClientLogHygiene
from driftline.observability.logthrottle import throttle_repeats
from driftline.observability.metrics import WorkerMetrics
from driftline.runtime.app import create_app
from driftline.runtime.profiles import ProfileFeed
from driftline.runtime.topics import ensure_topics

log = logging.getLogger(__name__)


class Worker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        hygiene = ClientLogHygiene()
        for handler in logger.handlers:  # reworded first, so that repeats share a template
            handler.addFilter(hygiene)
        throttle_repeats(logger)  # an outage's repeated client errors, once per 10 s

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        settle_collector()


def prepare_data_dir(config: Config) -> Path:
    """Create ``worker.data_dir`` (and its parents); a one-line ConfigError if it cannot be
    created or written."""
    path = Path(config.worker.data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{config.source}: worker.data_dir: {path.resolve()} cannot be created or written "
            f"({exc.strerror or exc}); set worker.data_dir to a writable directory"
        ) from None
    return path


# Young-generation collections every 20,000 allocations instead of 700, older ones rarer.
COLLECTOR_THRESHOLDS = (20_000, 50, 100)


def settle_collector() -> None:
    """Python's cycle collector tuned to a long-running worker.

    What start-up built (modules, Faust's services, the profiles) lives as long as the
    process: frozen, the collector's full passes skip it. Faust allocates a few objects per
    message, nearly all freed at once by reference counting, so collections can be rarer
    (pipeline runs pause the collector as well; docs/tuning.md has the measurements).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def run_worker(config: Config, loglevel: str = "info") -> None:
    prepare_data_dir(config)
    metrics = WorkerMetrics(config)
    pipeline = Pipeline.from_config(config, metrics)
    settings = config.worker
    partitions = ensure_topics(config)[config.topics.predictions]
    profiles = None
    if settings.profiles_from_kafka:  # before any event: each version meets its profile
        profiles = ProfileFeed(config)
        for profile in profiles.read_existing():
            pipeline.add_profile(profile)
        log.info("profiles topic %s read: %s", config.topics.profiles, known_profiles(pipeline))
        profiles.start()
    if settings.metrics_port:
        start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry
        )
        log.info("metrics on %s:%d/metrics", settings.metrics_host, settings.metrics_port)
    app = create_app(config, pipeline, metrics, partitions=partitions, profiles=profiles)
    worker = Worker(app, loglevel=loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()


def known_profiles(pipeline: Pipeline) -> str:
    """``model: version, version; ...`` of the profiles the pipeline has."""
    book = pipeline.book.profiles
    return "; ".join(f"{m}: {', '.join(sorted(v))}" for m, v in sorted(book.items())) or "none"
