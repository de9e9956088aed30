"""The ``driftline`` command line: worker, demo, baseline, and the local Kafka broker."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from driftline.config import Config, ConfigError, InputError, load_config
from driftline.observability.redact import redact_secrets_in_logs

if TYPE_CHECKING:
    from driftline.detectors.profile import ReferenceProfile

DESCRIPTION = """\
driftline watches the predictions (and labels) your models publish on Kafka, runs online
drift detectors per model and feature against a reference profile, and publishes alerts.

  driftline demo                       see it work end to end on a local Kafka (a minute)
  driftline baseline --config C ...    build a reference profile from training data
  driftline worker --config C          run the stream worker (scale out: run more of them)
  driftline replay --config C --events F   the worker's pipeline over a file, no Kafka
  driftline dashboards generate|push   the Grafana dashboards (dashboards/*.json)
  driftline docs generate [--check]    the docs' reference pages, from the code
  driftline kafka start|stop|status    the local single-node Kafka used by demo and tests
"""


def _config(path: str | None, delivers: bool = True) -> Config:
    """The config named by ``--config`` or $DRIFTLINE_CONFIG; ``delivers``: whether the
    command posts to the notification receivers (only then are their URLs needed)."""
    path = path or os.environ.get("DRIFTLINE_CONFIG")
    if not path:
        raise ConfigError("no config file: pass --config FILE or set DRIFTLINE_CONFIG")
    config = load_config(path, delivers=delivers)
    redact_secrets_in_logs(config.secrets())  # whatever a library logs, at any level
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        config = config.model_copy(
            update={"kafka": config.kafka.model_copy(update={"bootstrap_servers": bootstrap})}
        )
    return config


def _cmd_worker(args: argparse.Namespace) -> int:
    from driftline.runtime.worker import run_worker

    run_worker(_config(args.config), loglevel=args.loglevel)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from driftline.cli.demo import run

    if args.demo_action == "profile":
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for profile in (run.demo_profile(), run.late_profile()):
            path = out / f"{profile.model_id}.profile.json"
            path.write_bytes(profile.to_json())
            print(f"wrote {path}: profile {profile.version} of {profile.model_id}")
        return 0
    if args.demo_action == "produce":
        return run.produce(
            _config(args.config, delivers=False), args.rate, args.round_events, args.loop
        )
    return run.run_demo(
        bootstrap=args.bootstrap,
        n_events=args.events,
        rate=args.rate,
        metrics_port=args.metrics_port,
    )


def _cmd_baseline(args: argparse.Namespace) -> int:
    from driftline.detectors.reference_size import small_references
    from driftline.monitoring.baseline import OutcomeColumns, profile_from_file

    config = _config(args.config, delivers=False)
    if args.model not in config.models:
        raise ConfigError(
            f"{config.source}: models.{args.model}: not configured "
            f"(configured: {', '.join(config.models)})"
        )
    out = Path(args.out) if args.out else config.reference_path(args.model)
    if out is None:
        raise ConfigError(f"{config.source}: models.{args.model}.reference: set it, or pass --out")
    given = {r: getattr(args, f"{r}_column") for r in BASELINE_COLUMNS}
    columns = OutcomeColumns(
        **{role: name or BASELINE_COLUMNS[role] for role, name in given.items()},
        named=frozenset(role for role, name in given.items() if name),
    )
    profile, notes = profile_from_file(
        args.model, config.models[args.model], Path(args.data), args.model_version, columns
    )
    for note in notes:
        print(f"driftline: note: {note}", file=sys.stderr)
    for small in small_references(profile):
        print(f"driftline: warning: {small}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(profile.to_json())
    print(
        f"wrote {out}: profile {profile.version} of {args.model} v{profile.model_version}, "
        f"{profile.n_rows} rows, {len(profile.features)} features"
    )
    if args.publish:
        from driftline.runtime.topics import publish_profile

        key = f"{args.model}/{profile.model_version}"
        topic = publish_profile(config, key, profile.to_json())
        print(f"published to the compacted topic {topic} under key {key}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from driftline.monitoring.replay import merged_by_time, read_messages, replay

    config = _config(args.config, delivers=False)
    unreferenced = [m for m in config.models if config.reference_path(m) is None]
    if unreferenced and not args.without_reference:
        raise ConfigError(
            f"{config.source}: models.{unreferenced[0]}.reference: not set, so replay would "
            "check no drift; build one with driftline baseline, or pass --without-reference "
            "to replay data quality (and performance) only"
        )
    messages = read_messages(Path(args.events))
    if args.labels:
        messages = merged_by_time(messages, read_messages(Path(args.labels)))
    with contextlib.ExitStack() as files:
        out = (
            sys.stdout.buffer
            if args.out in (None, "-")
            else files.enter_context(Path(args.out).open("wb"))
        )
        dead = (
            files.enter_context(Path(args.dead_letters).open("wb")) if args.dead_letters else None
        )
        windows = (
            files.enter_context(Path(args.performance_windows).open("wb"))
            if args.performance_windows
            else None
        )
        history = (
            files.enter_context(Path(args.feature_windows).open("wb"))
            if args.feature_windows
            else None
        )
        profiles = [_read_profile(Path(p)) for p in args.profile or ()]
        summary = replay(config, messages, out, dead, windows, history, profiles)
    firing = sum(1 for a in summary.alerts if a.status == "firing")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.dead_letters.items())) or "none"
    labelled = f" ({summary.labels} of labels)" if summary.labels else ""
    closed = f", {summary.windows} performance windows" if summary.windows else ""
    print(
        f"replayed {summary.messages} messages{labelled}, {summary.events} events: {firing} "
        f"alerts fired, {len(summary.alerts) - firing} resolved{closed}; dead letters: {reasons}",
        file=sys.stderr,
    )
    return 0


def _read_profile(path: Path) -> ReferenceProfile:
    from driftline.detectors.profile import ReferenceProfile

    try:
        return ReferenceProfile.from_json(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"--profile: file {path} not found") from None
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"--profile: {path} is not a valid driftline profile: {exc}") from None


def _cmd_report(args: argparse.Namespace) -> int:
    import tempfile

    from driftline.report.build import build_reports

    config = _config(args.config, delivers=False)
    files = {
        "alerts": args.alerts,
        "windows": args.performance_windows,
        "history": args.feature_windows,
    }
    published = []
    with tempfile.TemporaryDirectory() as saved:
        if args.from_kafka:  # the records the workers published, read from their topics
            from driftline.runtime.profiles import published_profiles
            from driftline.runtime.topics import dump_topic

            published = published_profiles(config)  # a new version's profile is there

            topics = config.topics
            for name, topic in (
                ("alerts", topics.alerts),
                ("windows", topics.performance_windows),
                ("history", topics.feature_windows),
            ):
                files[name] = str(Path(saved) / f"{name}.jsonl")
                dump_topic(config.kafka, topic, Path(files[name]))
        written = build_reports(
            config,
            Path(args.out_dir),
            alerts=Path(files["alerts"]) if files["alerts"] else None,
            windows=Path(files["windows"]) if files["windows"] else None,
            events=Path(args.events) if args.events else None,
            history=Path(files["history"]) if files["history"] else None,
            recent=args.recent,
            models=args.model or None,
            published=published,
        )
    for path in written:
        print(f"wrote {path}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from driftline.runtime.status import serve

    config = _config(args.config, delivers=False)
    server, status = serve(config, args.host, args.port)
    port = server.server_address[1]
    print(
        f"driftline status: http://{args.host}:{port}/ (reading {config.topics.alerts} and the "
        "window topics; Ctrl-C stops it)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        status.stopping.set()
        server.server_close()
    return 0


def _cmd_retrain(args: argparse.Namespace) -> int:
    import shlex

    from driftline.runtime.retrainer import Retrainer

    config = _config(args.config, delivers=False)
    command = shlex.split(args.command)
    if not command:
        raise ConfigError("--command: give the command that trains the new version")
    retrainer = Retrainer(config, command, Path(args.work_dir))
    print(
        f"driftline retrain: running {args.command!r} for each request on "
        f"{config.topics.retraining_requests} (Ctrl-C stops it)",
        flush=True,
    )
    try:
        handled = retrainer.run(once=args.once)
    except KeyboardInterrupt:
        handled = 0
    finally:
        retrainer.close()
    if args.once:
        print(f"handled {handled} request")
    return 0


def _cmd_dashboards(args: argparse.Namespace) -> int:
    from driftline.observability import dashboards

    directory = Path(args.dir)
    if args.action == "generate":
        if args.check:
            stale = dashboards.stale(directory)
            if stale:
                print(
                    f"stale in {directory}: {', '.join(stale)} (run driftline dashboards generate)",
                    file=sys.stderr,
                )
                return 1
            print(f"{directory}: {len(dashboards.DASHBOARDS)} dashboards up to date")
            return 0
        for path in dashboards.write(directory):
            print(f"wrote {path}")
        return 0
    if not args.url:
        raise ConfigError("dashboards push: --url is required (e.g. http://127.0.0.1:3000)")
    try:
        uids = dashboards.push(args.url, directory, dict(os.environ), folder=args.folder)
    except dashboards.PushError as exc:
        print(f"driftline: {exc}", file=sys.stderr)
        return 1
    print(f"pushed {len(uids)} dashboards to {args.url} (folder {args.folder}): {', '.join(uids)}")
    return 0


def _cmd_docs(args: argparse.Namespace) -> int:
    from driftline.cli import reference_docs

    directory = Path(args.dir)
    stale = reference_docs.generate(build_parser(), directory, check=args.check)
    if args.check and stale:
        print(f"stale: {', '.join(stale)} (run driftline docs generate)", file=sys.stderr)
        return 1
    for path in [] if args.check else stale:
        print(f"wrote {path}")
    print(f"{directory}/reference: up to date")
    return 0


def _cmd_kafka(args: argparse.Namespace) -> int:
    from driftline.runtime.localkafka import main as kafka_main

    return kafka_main([args.action, "--port", str(args.port), "--name", args.name])


Commands = argparse._SubParsersAction  # what add_subparsers returns


BASELINE_COLUMNS = {
    "prediction": "prediction",
    "label": "label",
    "score": "score",
    "timestamp": "timestamp",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (for a bug report)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_worker,
        _add_demo,
        _add_baseline,
        _add_replay,
        _add_report,
        _add_status,
        _add_retrain,
        _add_dashboards,
        _add_docs,
        _add_kafka,
    ):
        add(sub)
    for command in sub.choices.values():  # after the command's name as well as before it
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _add_worker(sub: Commands) -> None:
    worker = sub.add_parser(
        "worker",
        help="run the stream worker",
        description="Consume predictions from Kafka, run the configured detectors per model and "
        "feature, keep their state in Faust tables (restored on restart), publish alerts and "
        "dead-letter bad input. Serves Prometheus metrics on worker.metrics_port. Stop with "
        "Ctrl-C or SIGTERM (a clean stop commits offsets and flushes state).",
    )
    worker.add_argument("--config", help="YAML config (default: $DRIFTLINE_CONFIG)")
    worker.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warning"],
        help="how much the worker logs (default: info)",
    )
    worker.set_defaults(func=_cmd_worker)


def _add_demo(sub: Commands) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the end-to-end demo on a local Kafka",
        description="Start a local Kafka (unless --bootstrap or $KAFKA_BOOTSTRAP_SERVERS names "
        "one), a worker and a producer replaying a food-delivery ETA model's traffic that runs "
        "stable, then drifts in distance_km and weather. Prints alerts as they arrive and a "
        "summary with detection delays.",
    )
    demo.add_argument("--bootstrap", help="use this Kafka instead of starting one")
    demo.add_argument(
        "--events", type=int, default=60_000, help="events to replay (default: %(default)s)"
    )
    demo.add_argument(
        "--rate", type=float, default=2_000.0, help="events per second (default: %(default)s)"
    )
    demo.add_argument(
        "--metrics-port",
        type=int,
        default=9464,
        help="the worker's Prometheus /metrics port (default: %(default)s)",
    )
    demo.set_defaults(func=_cmd_demo, demo_action=None)
    demo_actions = demo.add_subparsers(dest="demo_action", metavar="ACTION")
    profile = demo_actions.add_parser(
        "profile",
        help="only write the demo models' reference profiles (for the compose stack)",
        description="Write the reference profiles of the ETA model and the late-delivery "
        "classifier (eta.profile.json, late.profile.json) into --out-dir and exit.",
    )
    profile.add_argument("--out-dir", required=True, help="the folder to write them into")
    produce = demo_actions.add_parser(
        "produce",
        help="only send the demo traffic to a running worker's Kafka (for the compose stack)",
        description="Send the demo's ETA traffic (stable, an outage, then drift) to the "
        "predictions topic of the config, at --rate events/s; with --loop, round after round.",
    )
    produce.add_argument("--config", help="YAML config (default: $DRIFTLINE_CONFIG)")
    produce.add_argument(
        "--rate", type=float, default=200.0, help="events per second (default: %(default)s)"
    )
    produce.add_argument(
        "--events",
        dest="round_events",
        type=int,
        default=60_000,
        help="events per round (default: %(default)s)",
    )
    produce.add_argument("--loop", action="store_true", help="keep sending, round after round")


def _add_baseline(sub: Commands) -> None:
    baseline = sub.add_parser(
        "baseline",
        help="build a reference profile from training data",
        description="Read training or validation data (.csv, .parquet, .jsonl) and write the "
        "model's reference profile (quantiles, bins, frequencies, baseline performance) to "
        "the path in the config's models.<model>.reference, or --out.",
    )
    baseline.add_argument("--config", help="YAML config (default: $DRIFTLINE_CONFIG)")
    baseline.add_argument("--model", required=True, help="the model's key under models:")
    baseline.add_argument(
        "--data", required=True, help="a .csv, .parquet or .jsonl file, one row per prediction"
    )
    baseline.add_argument(
        "--model-version", default="1", help="the version the profile is for (default: 1)"
    )
    roles = {
        "prediction": "the model's output (default: prediction)",
        "label": "the ground truth; with the prediction it gives the baseline performance "
        "(default: label)",
        "score": "classifiers' scores, for the performance estimate: binary, the column of "
        "P(positive class); multiclass, the prefix of a column per class, <prefix>_<class> "
        "(default: score)",
        "timestamp": "when each row happened (epoch seconds or RFC 3339): tells which features "
        "follow a daily or weekly cycle, and builds the seasonal reference when the model has "
        "seasonality (default: timestamp)",
    }
    for role, text in roles.items():
        baseline.add_argument(
            f"--{role}-column",
            metavar="NAME",
            help=f"{text}; a column named here must exist, the default may be absent",
        )
    baseline.add_argument(
        "--out", help="where to write the profile (default: models.<model>.reference)"
    )
    baseline.add_argument(
        "--publish",
        action="store_true",
        help="also publish the profile to the compacted <prefix>profiles topic",
    )
    baseline.set_defaults(func=_cmd_baseline)


def _add_replay(sub: Commands) -> None:
    replay = sub.add_parser(
        "replay",
        help="run the worker's pipeline over a file of events, without Kafka",
        description="Run exactly the worker's pipeline (decode, detectors, alert policy) over "
        "a JSON-lines file whose lines are predictions-topic and labels-topic messages (events "
        "or batches) in arrival order, and write the alerts it would have sent as JSON lines. "
        "For tuning thresholds and backtesting performance on last month's traffic before "
        "going live.",
    )
    replay.add_argument("--config", help="YAML config (default: $DRIFTLINE_CONFIG)")
    replay.add_argument("--events", required=True, help="JSON lines, one message per line")
    replay.add_argument(
        "--labels",
        help="labels-topic messages in a file of their own: merged with --events by their "
        "timestamps (each file in time order)",
    )
    replay.add_argument(
        "--profile",
        action="append",
        help="another model version's profile (as published to the profiles topic); repeat "
        "for more",
    )
    replay.add_argument("--out", help="alerts as JSON lines (default: standard output)")
    replay.add_argument("--dead-letters", help="write rejected input here as JSON lines")
    replay.add_argument(
        "--feature-windows",
        help="write every feature window (detector shares, data-quality flags) here as JSON "
        "lines (as on the feature-windows topic)",
    )
    replay.add_argument(
        "--performance-windows",
        help="write every closed performance window here as JSON lines (as on the "
        "performance-windows topic)",
    )
    replay.add_argument(
        "--without-reference",
        action="store_true",
        help="replay models that have no reference profile (no drift detection for them)",
    )
    replay.set_defaults(func=_cmd_replay)


def _add_report(sub: Commands) -> None:
    report = sub.add_parser(
        "report",
        help="write a self-contained HTML report per model",
        description="Write one HTML file per model that opens offline: its alert episodes "
        "ranked, each feature's reference distribution beside the recent events', the "
        "predictions against the reference's, the performance windows with their bars and "
        "bands, and the config and reference profile. Reads what driftline replay writes (or "
        "what the worker publishes, saved from its topics): --alerts, --performance-windows, "
        "and the events themselves (--events).",
    )
    report.add_argument("--config", help="YAML config (default: $DRIFTLINE_CONFIG)")
    report.add_argument(
        "--from-kafka",
        action="store_true",
        help="read the alerts and window records from the workers' topics (instead of files), "
        "and the profiles topic for a new version's profile",
    )
    report.add_argument("--alerts", help="alert records, JSON lines (replay's --out)")
    report.add_argument("--performance-windows", help="performance-window records, JSON lines")
    report.add_argument(
        "--feature-windows", help="feature-window records, JSON lines: each feature's history"
    )
    report.add_argument(
        "--events", help="predictions-topic messages, JSON lines: the recent distributions"
    )
    report.add_argument(
        "--recent",
        type=int,
        default=5_000,
        help="how many of the last events make 'recent' (default: %(default)s)",
    )
    report.add_argument(
        "--model", action="append", help="only this model (repeat for more; default: all)"
    )
    report.add_argument(
        "--out-dir", default="report", help="where to write <model>.html (default: %(default)s)"
    )
    report.set_defaults(func=_cmd_report)


def _add_status(sub: Commands) -> None:
    status = sub.add_parser(
        "status",
        help="serve the fleet's live status page",
        description="Serve a read-only page of every configured model's state (healthy, "
        "drifting, broken, degraded), since when and why, its top features' history, the "
        "latest alerts and the workers' consumer lag, fed from the alerts and window topics "
        "that every worker writes; /model/<id> shows one model like the report.",
    )
    status.add_argument("--config", help="YAML config (default: $DRIFTLINE_CONFIG)")
    status.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)"
    )
    status.add_argument(
        "--port", type=int, default=8900, help="the port (0: any free one; default: %(default)s)"
    )
    status.set_defaults(func=_cmd_status)


def _add_retrain(sub: Commands) -> None:
    retrain = sub.add_parser(
        "retrain",
        help="an example retraining consumer: run a command for each retraining request",
        description="For each retraining request: publish accepted, write the request's sample "
        "of recent events (with labels) to <work-dir>/<key>/sample.jsonl, publish running, run "
        "--command with DRIFTLINE_REQUEST, DRIFTLINE_SAMPLE, DRIFTLINE_MODEL, "
        "DRIFTLINE_MODEL_VERSION and DRIFTLINE_OUTPUT set; the command writes "
        "$DRIFTLINE_OUTPUT/version and $DRIFTLINE_OUTPUT/reference.jsonl, whose profile is "
        "built and published for that version; then publish succeeded (or failed, with why).",
    )
    retrain.add_argument("--config", help="YAML config (default: $DRIFTLINE_CONFIG)")
    retrain.add_argument("--command", required=True, help="the training command (shell words)")
    retrain.add_argument(
        "--work-dir",
        default=".driftline/retrain",
        help="where each request's files go (default: %(default)s)",
    )
    retrain.add_argument("--once", action="store_true", help="stop after one request")
    retrain.set_defaults(func=_cmd_retrain)


def _add_dashboards(sub: Commands) -> None:
    boards = sub.add_parser(
        "dashboards",
        help="write the Grafana dashboards, or push them to a Grafana",
        description="generate: write the dashboards (fleet overview, model, service health) "
        "from driftline/observability/dashboards.py into --dir; with --check, exit 1 if the files "
        "there are "
        "stale. push: upload the dashboards in --dir to the Grafana at --url, with a "
        "service-account token from $GRAFANA_TOKEN (or $GRAFANA_USER and $GRAFANA_PASSWORD).",
    )
    boards.add_argument("action", choices=["generate", "push"])
    boards.add_argument(
        "--dir", default="dashboards", help="where the JSON files are (default: %(default)s)"
    )
    boards.add_argument("--check", action="store_true", help="generate: only check, write nothing")
    boards.add_argument("--url", help="push: Grafana's base URL")
    boards.add_argument(
        "--folder", default="driftline", help="push: Grafana folder title (default: %(default)s)"
    )
    boards.set_defaults(func=_cmd_dashboards)


def _add_docs(sub: Commands) -> None:
    docs = sub.add_parser(
        "docs",
        help="write the docs' reference pages from the code",
        description="generate: write the configuration, CLI, event, SDK and metrics reference "
        "pages (docs/reference/) from the config models, this parser, the JSON Schemas, the "
        "SDK and the worker's metrics; with --check, write nothing and exit 1 if a page is "
        "stale.",
    )
    docs.add_argument("action", choices=["generate"])
    docs.add_argument("--dir", default="docs", help="the docs folder (default: %(default)s)")
    docs.add_argument("--check", action="store_true", help="only check, write nothing")
    docs.set_defaults(func=_cmd_docs)


def _add_kafka(sub: Commands) -> None:
    kafka = sub.add_parser(
        "kafka",
        help="start, stop or check the local single-node Kafka",
        description="The local Apache Kafka broker (KRaft, loopback) from the jars that "
        "`make setup` fetched from Maven Central.",
    )
    kafka.add_argument(
        "action",
        choices=["start", "stop", "status"],
        help="start: format storage on first use, start, wait until it answers; "
        "stop: controlled shutdown (SIGTERM); status: exit 0 if running",
    )
    kafka.add_argument(
        "--port",
        type=int,
        default=19092,
        help="client port; the controller uses port + 1 (default: 19092)",
    )
    kafka.add_argument(
        "--name",
        default="default",
        help="a broker's own data and logs (.kafka/run/<name>), so that two local brokers "
        "(on two ports) do not share them (default: default)",
    )
    kafka.set_defaults(func=_cmd_kafka)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python is chatty at INFO
    # kafka-python 3 warns when its poll loop waits on a busy process (the demo's producers):
    # nothing a user can act on
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        if args.debug:
            raise
        text = str(exc)
        sep = "\n" if "\n" in text else " "  # one problem: one line
        print(f"driftline: configuration error:{sep}{text}", file=sys.stderr)
        return 2
    except (InputError, OSError) as exc:  # a file that is not there, or cannot be used
        if args.debug:
            raise
        print(f"driftline: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"driftline: {type(exc).__name__}: {_one_line(exc)} (run again with --debug for "
            "the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


if __name__ == "__main__":
    raise SystemExit(main())
