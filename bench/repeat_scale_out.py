"""Runs the scale-out test (tests/integration/test_scale_out_integration.py) N times on one local
broker and tallies: rare losses show only over many runs.

Each run prints pass or FAIL, and how often the workers' logs say they read a hole back from
the broker, sought back to the state's position, committed before a rebalance, or ended a
changelog's recovery on Faust's aborted-transaction check. A failed run's directory is kept,
with ``changelog.txt``: every state record of the changelog, committed or not, to see which
run of which worker wrote what. Usage: ``.venv/bin/python bench/repeat_scale_out.py [N]``
(default 12, about a minute each). Starts the local Kafka on port 27092.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.integration.test_scale_out_integration as scale_out
from driftline.runtime.localkafka import LocalKafka
from tests.conftest import read_topic

LOG_MARKS = {
    "holes": "not delivered by the consumer",
    "seek_back": "the restored state has",
    "pre_commit": "before the rebalance",
    "aborted_tx": "Aborted tx until highwater",  # a restore ended by Faust's 10 s waits
    "early_end": "restore: no record left",  # ended as soon as the broker said so
}


def changelog(bootstrap: str, app_id: str) -> str:
    lines = []
    for isolation in ("read_uncommitted", "read_committed"):
        topic = f"{app_id}-detector-state-changelog"
        for m in read_topic(bootstrap, topic, timeout_ms=4000, isolation_level=isolation):
            key, value = orjson.loads(m.key), orjson.loads(m.value)
            events = value.get(f"{key}/_model/events", value)
            applied = {k: v for k, v in value.items() if "/_applied/" in k}
            lines.append(f"{isolation} p{m.partition}@{m.offset} {key} {events} {applied}")
    return "\n".join(lines)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    kafka = LocalKafka(port=27092, controller_port=27093, name="repeat")
    kafka.start(fresh=True)
    failures = 0
    try:
        for i in range(runs):
            tmp = Path(tempfile.mkdtemp(prefix=f"scale-out-{i}-"))
            started = time.monotonic()
            try:
                scale_out.test_workers_join_and_leave_and_every_event_counts_once(
                    tmp, kafka.bootstrap_servers
                )
                verdict = "pass"
            except AssertionError as exc:
                failures += 1
                verdict = f"FAIL ({str(exc)[:300]}) kept in {tmp}"
                (tmp / "changelog.txt").write_text(changelog(kafka.bootstrap_servers, _app_id(tmp)))
            logs = "".join(p.read_text() for p in tmp.glob("*/worker.log"))
            marks = " ".join(f"{k}={logs.count(v)}" for k, v in LOG_MARKS.items())
            print(f"run {i}: {verdict} {time.monotonic() - started:.0f}s {marks}", flush=True)
            if verdict == "pass":
                shutil.rmtree(tmp)
    finally:
        kafka.stop()
    print(f"{failures} of {runs} runs failed")


def _app_id(tmp: Path) -> str:
    config = yaml.safe_load(next(tmp.glob("*/config.yaml")).read_text())
    return str(config["worker"]["app_id"])


if __name__ == "__main__":
    main()
