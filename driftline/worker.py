"""``driftline worker``: create topics, serve metrics, run the Faust app until stopped."""

from __future__ import annotations

import logging

import faust
from prometheus_client import start_http_server

from driftline.config import Config
from driftline.logthrottle import throttle_repeats
from driftline.metrics import WorkerMetrics
from driftline.pipeline import Pipeline
from driftline.stream.app import create_app
from driftline.stream.topics import ensure_topics

log = logging.getLogger(__name__)


class Worker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        throttle_repeats(logger)  # an outage's repeated client errors, once per 10 s


def run_worker(config: Config, loglevel: str = "info") -> None:
    metrics = WorkerMetrics(config)
    pipeline = Pipeline.from_config(config, metrics)
    partitions = ensure_topics(config)[config.topics.predictions]
    if config.worker.metrics_port:
        start_http_server(config.worker.metrics_port, addr="0.0.0.0", registry=metrics.registry)
        log.info("metrics on :%d/metrics", config.worker.metrics_port)
    app = create_app(config, pipeline, partitions=partitions)
    worker = Worker(app, loglevel=loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()
