"""Worker throughput on the real local broker: batched vs single-event messages.

Pre-produces the messages, then times three consumers of that same topic, each from its first
message to its last (startup excluded): the bare limit (aiokafka ``getmany``, decode only), a
bare Faust agent that only iterates (bench/bare_faust.py), and a ``driftline worker`` process
(polled on its /metrics; its CPU seconds and peak RSS read from /proc). The ratios to the bare
consumers are what to compare, since this machine's speed varies from run to run. Beside them,
in this process: the codec alone and the whole pipeline without Kafka, so that the table shows
where the time goes. Usage: ``.venv/bin/python bench/throughput.py``
(``--quick`` for a smaller run). Starts the local Kafka on port 39092 unless
KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer

from kafka import KafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driftline.config import config_from_dict
from driftline.detectors.profile import build_profile
from driftline.monitoring.pipeline import Pipeline
from driftline.monitoring.replay import takes
from driftline.observability.metrics import scrape_total
from driftline.runtime.localkafka import LocalKafka
from tests.conftest import WorkerProcess
from tests.streams import (
    FEATURES,
    batch_message,
    classifier_events,
    counted,
    write_classifier_profile,
)

N_NUMERIC, N_CATEGORICAL = 20, 5
# Single-event rates swing by a third between back-to-back runs on these shared vCPUs: bare
# Faust and the worker run in alternated pairs, and the median pair is reported.
SINGLE_EVENT_PAIRS = 3
BATCHED_EVENTS, BATCHED_REPEATS = 300_000, 6
CATS = np.array([f"c{i}" for i in range(8)], dtype=object)


def features() -> dict[str, str]:
    out = {f"n{i}": "numeric" for i in range(N_NUMERIC)}
    out.update({f"c{i}": "categorical" for i in range(N_CATEGORICAL)})
    return out


def columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {f"n{i}": rng.normal(i, 1 + i % 3, n) for i in range(N_NUMERIC)}
    for i in range(N_CATEGORICAL):
        cols[f"c{i}"] = rng.choice(CATS, n)
    return cols


def messages(
    n_events: int, batch: int, rng: np.random.Generator, columnar: bool = False
) -> list[bytes]:
    cols = columns(n_events, rng)
    names = list(cols)
    values = [cols[k].tolist() for k in names]
    rows: list[dict[str, Any]] = []
    for i in range(n_events):
        rows.append(
            {
                "prediction_id": f"p{i}",
                "timestamp": 1.7e9 + i,
                "features": {k: v[i] for k, v in zip(names, values, strict=True)},
                "prediction": 1.0,
            }
        )
    if batch == 1:
        return [orjson.dumps({"model_id": "bench", "model_version": "1", **r}) for r in rows]
    if columnar:  # what the SDK sends by default
        out = []
        for s in range(0, n_events, batch):
            part = rows[s : s + batch]
            table = {k: [r[k] for r in part] for k in ("prediction_id", "timestamp", "prediction")}
            table["features"] = {k: [r["features"][k] for r in part] for k in names}
            out.append(orjson.dumps({"model_id": "bench", "model_version": "1", "columns": table}))
        return out
    return [
        orjson.dumps({"model_id": "bench", "model_version": "1", "events": rows[s : s + batch]})
        for s in range(0, n_events, batch)
    ]


def bench_model(tmp: Path, rng: np.random.Generator) -> dict[str, Any]:
    """The benchmark model's config, with its reference profile written under ``tmp``."""
    profile = build_profile("bench", "1", columns(20_000, rng), features())
    (tmp / "bench.json").write_bytes(profile.to_json())
    return {"task": "regression", "features": features(), "reference": str(tmp / "bench.json")}


def in_process(pipeline: Pipeline, msgs: list[bytes], decode_only: bool) -> float:
    """Seconds to decode, or to run the whole pipeline, micro-batched as the worker does."""
    state: dict[str, bytes] = {}
    worker = pipeline.config.worker
    started = time.perf_counter()
    for chunk in takes(msgs, worker.micro_batch_messages, worker.micro_batch_bytes):
        if decode_only:
            for m in chunk:
                pipeline.decoder.decode_predictions(m)
        else:
            pipeline.process_messages(chunk, state)
    return time.perf_counter() - started


@dataclass
class Run:
    """One timed consumer: counted from its first message to its last (startup excluded)."""

    events: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float = float("nan")

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_seconds / self.events * 1e6


def prepared_worker(
    tmp: Path,
    bootstrap: str,
    model: dict[str, Any],
    msgs: list[bytes],
    model_id: str = "bench",
    **worker_settings: Any,
) -> WorkerProcess:
    """A worker (not started yet) with ``msgs`` already on its predictions topic."""
    worker = WorkerProcess(tmp, bootstrap, {model_id: model}, **worker_settings)
    produce(bootstrap, worker.topic("predictions"), model_id.encode(), msgs)
    return worker


def timed_worker(worker: WorkerProcess, n_events: int) -> Run:
    worker.start()
    assert worker.proc is not None
    pid = worker.proc.pid
    try:
        while worker.processed() == 0:
            time.sleep(0.01)
        t0, cpu0, first = time.perf_counter(), process_cpu(pid), worker.processed()
        deadline = t0 + 600
        while (done := worker.processed()) < n_events:
            assert time.perf_counter() < deadline and worker.proc.poll() is None, worker.log_tail()
            sleep_for_most_of_the_rest(t0, first, done, n_events)
        elapsed, cpu = time.perf_counter() - t0, process_cpu(pid) - cpu0
        peak = peak_rss_mb(pid)
    finally:
        worker.stop()
    return Run(int(n_events - first), elapsed, cpu, peak)


def sleep_for_most_of_the_rest(t0: float, first: float, done: float, n_events: float) -> None:
    """Sleep most of the time the remaining events take at the rate since ``t0``: a scrape
    takes CPU from the worker, so it is polled a few times, and often only near the end."""
    rate = (done - first) / (time.perf_counter() - t0)
    if rate <= 0:  # nothing counted since t0 yet: no rate to go by, so look again soon
        time.sleep(0.05)
        return
    time.sleep(min(1.0, max(0.02, 0.7 * (n_events - done) / rate)))


def worker_run(
    tmp: Path,
    bootstrap: str,
    model: dict[str, Any],
    msgs: list[bytes],
    n_events: int,
    **worker_settings: Any,
) -> tuple[float, float]:
    run = timed_worker(prepared_worker(tmp, bootstrap, model, msgs, **worker_settings), n_events)
    return run.events, run.seconds


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bare_consumer(bootstrap: str, topic: str, n_messages: int, per_message: int) -> Run:
    """The limit: aiokafka ``getmany`` batches, each message only decoded (orjson)."""

    async def consume() -> Run:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=16 << 20,
            fetch_max_bytes=64 << 20,
        )
        await consumer.start()
        seen, t0, cpu0 = 0, 0.0, 0.0
        try:
            while seen < n_messages:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batches.values():
                    if seen == 0:
                        t0, cpu0 = time.perf_counter(), time.process_time()
                    for record in records:
                        orjson.loads(record.value)
                    seen += len(records)
        finally:
            await consumer.stop()
        return Run(seen * per_message, time.perf_counter() - t0, time.process_time() - cpu0)

    return asyncio.run(consume())


def bare_faust(tmp: Path, bootstrap: str, topic: str, n_messages: int, per_message: int) -> Run:
    """A Faust agent that only iterates the messages (bench/bare_faust.py, its own process)."""
    result = tmp / "bare_faust.json"
    script = Path(__file__).with_name("bare_faust.py")
    subprocess.run(
        [sys.executable, str(script), bootstrap, topic, str(n_messages), str(result)],
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    seconds, cpu = orjson.loads(result.read_bytes())
    return Run(n_messages * per_message, seconds, cpu)


@contextmanager
def workspace(rng: np.random.Generator) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """A broker ($KAFKA_BOOTSTRAP_SERVERS, else a fresh local one), a scratch directory and
    the bench model (its profile written there)."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    kafka = None
    if not bootstrap:
        kafka = LocalKafka(port=39092, controller_port=39093, name="bench")
        kafka.start(fresh=True)
        bootstrap = kafka.bootstrap_servers
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            yield bootstrap, tmp, bench_model(tmp, rng)
    finally:
        if kafka is not None:
            kafka.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="instead: single-event worker rate per micro-batch linger, and the batched worker "
        "rate per merge_events cap (how the defaults were chosen)",
    )
    parser.add_argument(
        "--labels",
        action="store_true",
        help="only the performance-monitoring table: predictions and labels with it on, "
        "beside predictions with it off",
    )
    parser.add_argument(
        "--restore",
        action="store_true",
        help="instead: memory per waiting prediction, and the restart time of a worker holding "
        "1,000,000 of them beside one holding 1,000",
    )
    parser.add_argument(
        "--guarantees",
        action="store_true",
        help="instead: worker rate with processing_guarantee at_least_once vs exactly_once, "
        "alternating, two runs each",
    )
    args = parser.parse_args()
    if args.sweep:
        sweep()
        return
    if args.guarantees:
        guarantees()
        return
    if args.labels:
        label_path(args.quick)
        return
    if args.restore:
        waiting_restore(args.quick)
        return
    # A take is up to 40 MB (~200 of these 500-event messages, 100,000 events), and the first
    # one is not timed. The batched messages are BATCHED_EVENTS' worth sent BATCHED_REPEATS
    # times: getmany reads about 900,000 events/s here, and a run must last seconds.
    n_batched = 50_000 if args.quick else BATCHED_EVENTS * BATCHED_REPEATS
    n_single = 5_000 if args.quick else 60_000
    rng = np.random.default_rng(0)
    rows = []
    spread: dict[str, list[float]] = {}
    with workspace(rng) as (bootstrap, tmp, model):
        pipeline = counted(config_from_dict({"models": {"bench": model}}))
        for label, batch, n, columnar in [
            ("columnar batch (500/msg)", 500, n_batched, True),
            ("row batch (500/msg)", 500, n_batched, False),
            ("single event/msg", 1, n_single, False),
        ]:
            distinct = min(n, BATCHED_EVENTS)
            msgs = messages(distinct, batch, rng, columnar) * (n // distinct)  # same stream again
            decode = in_process(pipeline, msgs, decode_only=True)
            full = in_process(pipeline, msgs, decode_only=False)
            pairs = []
            for i in range(SINGLE_EVENT_PAIRS if batch == 1 else 1):
                run_dir = tmp / f"{label.replace(' ', '_').replace('/', '_')}-{i}"
                run_dir.mkdir()
                # the same messages on the same topic for the bare consumers and the worker
                worker = prepared_worker(run_dir, bootstrap, model, msgs)
                topic = worker.topic("predictions")
                if i == 0:
                    limit = bare_consumer(bootstrap, topic, len(msgs), batch)
                pairs.append(
                    (
                        bare_faust(run_dir, bootstrap, topic, len(msgs), batch),
                        timed_worker(worker, n),
                    )
                )
            pairs.sort(key=lambda pair: pair[1].rate / pair[0].rate)
            agent, ours = pairs[len(pairs) // 2]  # the pair of the median ratio
            spread[label] = [ours.rate / agent.rate for agent, ours in pairs]
            rows.append((label, n, len(msgs), n / decode, n / full, limit, agent, ours))
    print(f"\n{N_NUMERIC} numeric + {N_CATEGORICAL} categorical features, default detectors\n")
    head = (
        "path",
        "events",
        "codec ev/s",
        "pipeline ev/s",
        "getmany+decode ev/s",
        "bare Faust ev/s",
        "worker ev/s",
        "worker / getmany",
        "worker / bare Faust",
        "worker CPU s per M ev",
        "getmany CPU s per M ev",
        "bare Faust CPU s per M ev",
        "worker peak RSS MB",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, n, _, dec, full, limit, agent, ours in rows:
        print(
            f"| {label} | {n:,} | {dec:,.0f} | {full:,.0f} | {limit.rate:,.0f} | "
            f"{agent.rate:,.0f} | {ours.rate:,.0f} | {ours.rate / limit.rate:.2f} | "
            f"{ours.rate / agent.rate:.2f} | {ours.cpu_per_million:.1f} | "
            f"{limit.cpu_per_million:.1f} | {agent.cpu_per_million:.1f} | {ours.peak_rss_mb:.0f} |"
        )
    for label, ratios in spread.items():
        if len(ratios) > 1:
            shown = ", ".join(f"{r:.2f}" for r in ratios)
            print(
                f"\n{label}: worker / bare Faust in {len(ratios)} alternated pairs: {shown} "
                "(the table shows the median pair)"
            )
    label_path(args.quick)


LABEL_EVENTS = 200_000


def classifier_messages(n: int, rng: np.random.Generator) -> tuple[list[bytes], list[bytes]]:
    """A binary classifier's ``n`` predictions and their labels (600 s later), 500 per
    message."""
    preds, labels = classifier_events(n, rng)
    later = [{**e, "timestamp": e["timestamp"] + 600} for e in labels]
    p_msgs = [batch_message("clf", preds[i : i + 500]) for i in range(0, n, 500)]
    l_msgs = [
        orjson.dumps({"model_id": "clf", "events": later[i : i + 500]}) for i in range(0, n, 500)
    ]
    return p_msgs, l_msgs


def label_path(quick: bool) -> None:
    """A binary classifier's predictions (500 per message, with scores) through a worker with
    performance monitoring off, then on; with it on, the labels of those predictions follow,
    produced once the predictions are processed, so that each rate is timed on its own."""
    n = 20_000 if quick else LABEL_EVENTS
    rng = np.random.default_rng(1)
    p_msgs, l_msgs = classifier_messages(n, rng)
    rows = []
    with workspace(rng) as (bootstrap, tmp, _):
        profile = write_classifier_profile(tmp / "clf.json")
        for enabled in (False, True):
            model = {
                "task": "binary",
                "features": dict(FEATURES),
                "reference": str(profile),
                # the events are a second apart: every prediction waits within the TTL
                "performance": {"enabled": enabled, "label_ttl_seconds": 2 * n},
            }
            run_dir = tmp / f"performance-{enabled}"
            run_dir.mkdir()
            # one partition: the predictions topic is auto-created so by the producer, and the
            # labels topic must have the same count
            worker = prepared_worker(
                run_dir, bootstrap, model, p_msgs, model_id="clf", partitions=1
            )
            worker.start()
            assert worker.proc is not None
            try:
                predictions = timed_counter(worker, n, worker.processed)
                rows.append((enabled, "predictions", predictions))
                if enabled:
                    produce(bootstrap, worker.topic("labels"), b"clf", l_msgs)
                    rows.append((enabled, "labels", timed_counter(worker, n, joined(worker))))
            finally:
                worker.stop()
    off = rows[0][2].rate
    print(f"\nbinary classifier, {len(FEATURES)} features, 500 events per message, {n:,} each\n")
    print(
        "| performance monitoring | events | worker ev/s | / predictions with it off "
        "| worker CPU s per M ev | worker peak RSS MB |"
    )
    print("|---|---|---|---|---|---|")
    for enabled, kind, run in rows:
        print(
            f"| {'on' if enabled else 'off'} | {kind} | {run.rate:,.0f} | {run.rate / off:.2f} "
            f"| {run.cpu_per_million:.1f} | {run.peak_rss_mb:.0f} |"
        )


def waiting_restore(quick: bool) -> None:
    """Workers (performance on) hold ``n`` predictions waiting for labels; beside each, a
    worker with performance off read the same messages. Memory per waiting prediction is the
    difference of their RSS over ``n``. Each performance-on worker is then stopped, a label
    message is put on its labels topic, and it is started again: the restart time is from its
    launch to that label joined (state restored from the changelogs, the partitions back)."""
    sizes = (1_000, 100_000 if quick else 1_000_000)
    rng = np.random.default_rng(2)
    rows = []
    with workspace(rng) as (bootstrap, tmp, _):
        profile = write_classifier_profile(tmp / "clf.json")
        for n in sizes:
            preds, labels = classifier_events(n, rng)
            msgs = [batch_message("clf", preds[i : i + 500]) for i in range(0, n, 500)]
            label_msg = orjson.dumps({"model_id": "clf", "events": labels[-10:]})
            rss = {}
            for enabled in (False, True):
                model = {
                    "task": "binary",
                    "features": dict(FEATURES),
                    "reference": str(profile),
                    "performance": {"enabled": enabled, "label_ttl_seconds": 2 * n},
                }
                run_dir = tmp / f"restore-{n}-{enabled}"
                run_dir.mkdir()
                worker = prepared_worker(run_dir, bootstrap, model, msgs, "clf", partitions=1)
                worker.start()
                try:
                    worker.wait_processed(n, timeout=600)
                    assert worker.proc is not None
                    rss[enabled] = current_rss_mb(worker.proc.pid)
                finally:
                    worker.stop()
            produce(bootstrap, worker.topic("labels"), b"clf", [label_msg])
            started = time.perf_counter()
            worker.launch()
            try:
                while joined(worker)() < 10:
                    assert worker.proc is not None and worker.proc.poll() is None
                    assert time.perf_counter() - started < 600, worker.log_tail()
                    time.sleep(0.05)
                restart = time.perf_counter() - started
            finally:
                worker.stop()
            per_waiting = (rss[True] - rss[False]) * 1024 * 1024 / n
            rows.append((n, rss[False], rss[True], per_waiting, restart))
    print(
        "\n| waiting predictions | RSS off MB | RSS on MB | bytes per waiting prediction "
        "| restart to first label joined, s |"
    )
    print("|---|---|---|---|---|")
    for n, off, on, per, restart in rows:
        print(f"| {n:,} | {off:.0f} | {on:.0f} | {per:,.0f} | {restart:.1f} |")


def current_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def joined(worker: WorkerProcess) -> Callable[[], float]:
    return lambda: scrape_total(worker.metrics_port, "driftline_labels_total", 'outcome="joined"')


def produce(bootstrap: str, topic: str, key: bytes, msgs: list[bytes]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20, max_request_size=16 << 20
    )
    for m in msgs:
        producer.send(topic, key=key, value=m)
    producer.flush()
    producer.close()


def timed_counter(worker: WorkerProcess, n_events: int, count: Callable[[], float]) -> Run:
    """A started worker timed on one of its counters, from its first change to ``n_events``."""
    assert worker.proc is not None
    pid = worker.proc.pid
    while (first := count()) == 0:
        assert worker.proc.poll() is None, worker.log_tail()
        time.sleep(0.01)
    t0, cpu0 = time.perf_counter(), process_cpu(pid)
    deadline = t0 + 600
    while (done := count()) < n_events:
        assert time.perf_counter() < deadline and worker.proc.poll() is None, worker.log_tail()
        sleep_for_most_of_the_rest(t0, first, done, n_events)
    elapsed, cpu = time.perf_counter() - t0, process_cpu(pid) - cpu0
    return Run(int(n_events - first), elapsed, cpu, peak_rss_mb(pid))


def guarantees() -> None:
    """Worker events/s under each processing guarantee, alternated in one run (noise shows)."""
    rng = np.random.default_rng(0)
    with workspace(rng) as (bootstrap, tmp, model):
        print(f"{'messages':<20} {'guarantee':<15} {'events/s':>10}")
        cases = [
            ("columnar 500/msg", 500, 100_000, True),
            ("single event/msg", 1, 8_000, False),
        ]
        for label, batch, n, columnar in cases:
            msgs = messages(n, batch, rng, columnar)
            for i, g in enumerate(["at_least_once", "exactly_once"] * 2):
                run_dir = tmp / f"{batch}-{g}-{i}"
                run_dir.mkdir()
                counted, elapsed = worker_run(
                    run_dir, bootstrap, model, msgs, n, processing_guarantee=g
                )
                print(f"{label:<20} {g:<15} {counted / elapsed:>10,.0f}", flush=True)


def sweep() -> None:
    rng = np.random.default_rng(0)
    with workspace(rng) as (bootstrap, tmp, model):
        single = messages(20_000, 1, rng)
        print("\n| micro_batch_linger_ms | worker ev/s, single-event messages |")
        print("|---|---|")
        for linger in (20, 100, 250):
            run_dir = tmp / f"linger{linger}"
            run_dir.mkdir()
            counted, elapsed = worker_run(
                run_dir,
                bootstrap,
                model,
                single,
                20_000,
                micro_batch_linger_ms=linger,
            )
            print(f"| {linger} | {counted / elapsed:,.0f} |", flush=True)
        batched = messages(300_000, 500, rng, columnar=True)
        merges = (4096, 16_384, 65_536)
        rates: dict[int, list[float]] = {merge: [] for merge in merges}
        peaks: dict[int, list[float]] = {merge: [] for merge in merges}
        for round_ in range(3):  # alternated: ratios to 4,096 are what this noisy machine keeps
            for merge in merges:
                run_dir = tmp / f"merge{merge}-{round_}"
                run_dir.mkdir()
                worker = prepared_worker(run_dir, bootstrap, model, batched, merge_events=merge)
                run = timed_worker(worker, 300_000)
                rates[merge].append(run.rate)
                peaks[merge].append(run.peak_rss_mb)
        print("\n| merge_events | worker ev/s, columnar 500/msg, median of 3 ", end="")
        print("| / 4,096, median | peak RSS MB, median |\n|---|---|---|---|")
        for merge, r in rates.items():
            ratio = np.median(np.array(r) / np.array(rates[4096]))
            peak = np.median(peaks[merge])
            print(f"| {merge:,} | {np.median(r):,.0f} | {ratio:.2f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
