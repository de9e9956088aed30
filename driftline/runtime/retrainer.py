"""``driftline retrain``: a small example of the retraining pipeline's side of the loop.

For each retraining request it reads (consumer group ``<app_id>-retrainer``) it:

1. publishes ``accepted``, writes the request's sample to ``<work-dir>/<key>/sample.jsonl``
   and publishes ``running``;
2. runs the configured command with the request in its environment:
   ``DRIFTLINE_REQUEST`` (the request's JSON file), ``DRIFTLINE_SAMPLE`` (the sample),
   ``DRIFTLINE_MODEL``, ``DRIFTLINE_MODEL_VERSION`` (the version that drifted) and
   ``DRIFTLINE_OUTPUT`` (a directory for the command's results);
3. expects the command to write ``$DRIFTLINE_OUTPUT/version`` (the new version's name) and
   ``$DRIFTLINE_OUTPUT/reference.jsonl`` (the data to build its reference from: features, the
   new model's predictions, and labels for its baseline performance), then builds that
   version's profile as ``driftline baseline`` does and publishes it to the profiles topic,
   where every worker picks it up;
4. publishes ``succeeded`` with the new version, which resolves the episode that asked, or
   ``failed`` with why (the command's exit code and the end of its output).

A real pipeline would deploy the new version too; this example leaves that to its command.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from driftline.config import Config
from driftline.events.records import RetrainingRequest, RetrainingStatus, SamplePointer
from driftline.monitoring.baseline import profile_from_file
from driftline.runtime.topics import kafka_client_options, publish_profile

log = logging.getLogger(__name__)

OUTPUT_TAIL = 2_000  # characters of the command's output a failed status carries


class Retrainer:
    def __init__(self, config: Config, command: list[str], work_dir: Path) -> None:
        from kafka import KafkaProducer

        self.config = config
        self.command = command
        self.work_dir = work_dir
        self.producer = KafkaProducer(**kafka_client_options(config.kafka))

    def close(self) -> None:
        self.producer.close()

    def run(self, once: bool = False, stop: Callable[[], bool] = lambda: False) -> int:
        """Handle requests until ``stop()`` (or, with ``once``, after the first); the number
        handled."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            self.config.topics.retraining_requests,
            **kafka_client_options(self.config.kafka),
            group_id=f"{self.config.worker.app_id}-retrainer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        handled = 0
        try:
            while not stop():
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self.handle(RetrainingRequest.from_json(record.value))
                        handled += 1
                        consumer.commit()
                        if once:
                            return handled
        finally:
            consumer.close()
        return handled

    def handle(self, request: RetrainingRequest) -> RetrainingStatus:
        """One request, start to end; the status it ended with."""
        key = request.idempotency_key
        if request.model_id not in self.config.models:
            return self._status(request, "failed", detail="model not in this config")
        self._status(request, "accepted")
        folder = self.work_dir / key
        output = folder / "output"
        output.mkdir(parents=True, exist_ok=True)
        (folder / "request.json").write_bytes(request.to_json())
        sample = folder / "sample.jsonl"
        rows = read_sample(self.config, request.sample) if request.sample else []
        sample.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
        self._status(request, "running", detail=f"{len(rows):,} sample events")
        env = {
            **os.environ,
            "DRIFTLINE_REQUEST": str(folder / "request.json"),
            "DRIFTLINE_SAMPLE": str(sample),
            "DRIFTLINE_MODEL": request.model_id,
            "DRIFTLINE_MODEL_VERSION": request.model_version,
            "DRIFTLINE_OUTPUT": str(output),
        }
        done = subprocess.run(self.command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-OUTPUT_TAIL:]
            return self._status(
                request, "failed", detail=f"command exited {done.returncode}: {tail}"
            )
        try:
            version = (output / "version").read_text().strip()
            model = self.config.models[request.model_id]
            profile, _ = profile_from_file(
                request.model_id, model, output / "reference.jsonl", version
            )
        except (OSError, ValueError, KeyError) as exc:
            return self._status(request, "failed", detail=f"no new version to publish: {exc}")
        publish_profile(self.config, f"{request.model_id}/{version}", profile.to_json())
        log.info("published the profile of %s version %s", request.model_id, version)
        return self._status(request, "succeeded", new_version=version)

    def _status(
        self, request: RetrainingRequest, status: str, new_version: str = "", detail: str = ""
    ) -> RetrainingStatus:
        record = RetrainingStatus(
            idempotency_key=request.idempotency_key,
            model_id=request.model_id,
            status=status,  # type: ignore[arg-type]
            model_version=request.model_version,
            new_version=new_version,
            detail=detail,
            created_at=time.time(),
        )
        topic = self.config.topics.retraining_status
        self.producer.send(topic, key=request.model_id.encode(), value=record.to_json())
        self.producer.flush()
        log.info("request %s: %s %s", request.idempotency_key, status, new_version or detail)
        return record


def read_sample(config: Config, pointer: SamplePointer) -> list[dict]:
    """The rows a request's sample pointer names: from its file, or from its topic."""
    if pointer.path is not None:
        return [json.loads(line) for line in Path(pointer.path).read_text().splitlines()]
    from kafka import KafkaConsumer, TopicPartition

    assert pointer.topic is not None and pointer.partition is not None
    assert pointer.offset is not None and pointer.messages is not None
    consumer = KafkaConsumer(
        **kafka_client_options(config.kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    tp = TopicPartition(pointer.topic, pointer.partition)
    consumer.assign([tp])
    consumer.seek(tp, pointer.offset)
    rows: list[dict] = []
    read, key, deadline = 0, None, time.monotonic() + 30
    try:
        while read < pointer.messages and time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500).get(tp, []):
                # other models' samples share the partition: this sample is the run of
                # messages with the first one's key
                key = key if key is not None else record.key
                if record.key != key:
                    continue
                rows.extend(orjson.loads(record.value))
                read += 1
                if read == pointer.messages:
                    break
    finally:
        consumer.close()
    return rows
