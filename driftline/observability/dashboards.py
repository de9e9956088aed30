"""Grafana dashboards as code: the fleet overview, one model, and the service's health.

Built with grafana-foundation-sdk, Grafana's own typed builders generated from its dashboard
schema (pinned to the Grafana 11.6 schema, the version the compose stack runs): a wrong field
name or type is a mypy error here instead of a panel that silently does not render, and layout
(grid positions) is computed. grafanalib was the alternative; it is maintained by a third party
and trails Grafana's schema.

``driftline dashboards generate`` writes dashboards/*.json from this module, and a test fails
when the checked-in files differ from what it writes. Every panel uses the ``datasource``
variable and the worker metrics only (see observability/metrics.py); the model dashboard is
templated by ``model``. Each panel's description says what question it answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    AnnotationQuery,
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import BigValueTextMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
MODEL = 'model="$model"'
RATE = "$__rate_interval"
JOB = 'job="driftline"'  # the scrape job's name in deploy/prometheus/prometheus.yml
FLEET_UID, MODEL_UID, SERVICE_UID = "driftline-fleet", "driftline-model", "driftline-service"
MODEL_LINK = f"/d/{MODEL_UID}?var-model=${{__data.fields.model}}&${{__url_time_range}}"

Panel = stat.Panel | timeseries.Panel | table.Panel | statetimeline.Panel | bargauge.Panel


def query(expr: str, legend: str = "", ref: str = "A", table_format: bool = False) -> Dataquery:
    q = Dataquery().expr(expr).ref_id(ref)
    if legend:
        q = q.legend_format(legend)
    if table_format:  # one row per series, the latest value: for tables
        q = q.format(PromQueryFormat.TABLE).instant()
    return q


def quantiles(histogram: str, qs: tuple[float, ...]) -> list[Dataquery]:
    """The model's quantiles of a histogram metric, one query each (p50, p99, ...)."""
    return [
        query(
            f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{{{MODEL}}}[{RATE}])))",
            f"p{round(q * 100)}",
            ref="ABCDEFGH"[i],
        )
        for i, q in enumerate(qs)
    ]


def steps(*pairs: tuple[float | None, str]) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in pairs])
    )


OK_THEN_RED = steps((None, "green"), (1, "red"))
NEUTRAL = steps((None, "text"))


def stat_panel(
    title: str, about: str, expr: str, unit: str = "short", colors: ThresholdsConfig = OK_THEN_RED
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(about)
        .with_target(query(expr))
        .unit(unit)
        .thresholds(colors)
        .height(4)
        .span(4)
    )


def series_panel(
    title: str, about: str, *queries: Dataquery, unit: str = "short", span: int = 12
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(about).unit(unit).height(8).span(span)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def timeline_panel(title: str, about: str, q: Dataquery) -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .title(title)
        .description(about)
        .with_target(q)
        .thresholds(OK_THEN_RED)
        .height(8)
        .span(12)
    )


def table_panel(title: str, about: str, *queries: Dataquery, span: int = 12) -> table.Panel:
    panel = table.Panel().title(title).description(about).height(8).span(span)
    for q in queries:
        panel = panel.with_target(q)
    # one row per label set, a column per query
    return panel.with_transformation(DataTransformerConfig(id_val="merge", options={}))


def _dashboard(
    uid: str, title: str, about: str, rows: list[tuple[str, Sequence[Panel]]]
) -> Dashboard:
    board = (
        Dashboard(title)
        .uid(uid)
        .description(about)
        .tags(["driftline"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .link(
            DashboardLink("driftline")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(["driftline"])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(True)
        )
    )
    for row_title, panels in rows:
        board = board.with_row(Row(row_title))
        for panel in panels:
            board = board.with_panel(panel.datasource(DATASOURCE))
    return board


def _fleet_now() -> list[Panel]:
    """The fleet at a glance."""
    return [
        stat_panel(
            "Workers up",
            "Worker processes Prometheus can scrape. Below the number you run: a worker is down "
            "and its partitions wait for a rebalance.",
            f"sum(up{{{JOB}}})",
            colors=steps((None, "red"), (1, "green")),
        ),
        stat_panel(
            "Events/s",
            "Predictions processed per second, all models.",
            f"sum(rate(driftline_events_processed_total[{RATE}]))",
            unit="ops",
            colors=NEUTRAL,
        ),
        stat_panel(
            "Models drifting",
            "Models with at least one feature signalling drift now.",
            "count(sum by (model) (driftline_feature_drifting) > 0) or vector(0)",
        ),
        stat_panel(
            "Failing data-quality checks",
            "Checks failing now, all models: a pipeline break upstream (nulls, wrong types, "
            "renamed fields, units). Fix those before reading drift.",
            "sum(driftline_data_quality_failing)",
        ),
        stat_panel(
            "Consumer lag",
            "Prediction messages not yet processed, all partitions. Growing: the workers "
            "fall behind (add workers, up to the partition count).",
            "sum(driftline_consumer_lag)",
            colors=steps((None, "green"), (10_000, "orange"), (100_000, "red")),
        ),
        stat_panel(
            "Alerts fired (24 h)",
            "Drift and data-quality alerts the workers published in the last 24 hours.",
            'sum(increase(driftline_alerts_total{status="firing"}[24h]))',
            colors=NEUTRAL,
        ),
    ]


def _fleet_models() -> Panel:
    """A row per model, linking to its dashboard."""
    return (
        table_panel(
            "Models now",
            "One row per model: traffic, features drifting, data-quality checks failing, "
            "alerts fired in 24 h. Click a model for its dashboard.",
            query(
                f"sum by (model) (rate(driftline_events_processed_total[{RATE}]))",
                ref="A",
                table_format=True,
            ),
            query("sum by (model) (driftline_feature_drifting)", ref="B", table_format=True),
            query("sum by (model) (driftline_data_quality_failing)", ref="C", table_format=True),
            query(
                'sum by (model) (increase(driftline_alerts_total{status="firing"}[24h]))',
                ref="D",
                table_format=True,
            ),
            span=24,
        )
        .with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "renameByName": {
                        "Value #A": "events/s",
                        "Value #B": "features drifting",
                        "Value #C": "data-quality checks failing",
                        "Value #D": "alerts fired (24 h)",
                    },
                },
            )
        )
        .data_links([DashboardLink("Open the model's dashboard").url(MODEL_LINK)])
    )


def _fleet_trends() -> list[Panel]:
    """Drift, data quality and throughput per model over time."""
    return [
        series_panel(
            "Drifting features per model",
            "How many features of each model signal drift, over time: when it started, "
            "whether it spreads.",
            query("sum by (model) (driftline_feature_drifting)", "{{model}}"),
        ),
        series_panel(
            "Events/s per model",
            "Traffic per model. A model at zero: its producer stopped or its messages are "
            "dead-lettered.",
            query(f"sum by (model) (rate(driftline_events_processed_total[{RATE}]))", "{{model}}"),
            unit="ops",
        ),
        series_panel(
            "Alerts fired per model",
            "Alerts published per model and kind, per hour.",
            query(
                'sum by (model, kind) (increase(driftline_alerts_total{status="firing"}[1h]))',
                "{{model}} {{kind}}",
            ),
        ),
        series_panel(
            "Consumer lag per partition",
            "Unprocessed prediction messages per partition of the predictions topic.",
            query("sum by (partition) (driftline_consumer_lag)", "partition {{partition}}"),
        ),
    ]


def fleet() -> Dashboard:
    return _dashboard(
        FLEET_UID,
        "driftline: fleet overview",
        "All monitored models at a glance: which drift, which have broken inputs, is the "
        "service keeping up.",
        [("Now", _fleet_now()), ("Models", [_fleet_models()]), ("Over time", _fleet_trends())],
    )


def _model_now() -> list[Panel]:
    """The model at a glance: drifting features, data quality, rates."""
    return [
        stat_panel(
            "Features drifting",
            "Features of this model signalling drift now (within the alert policy's resolve "
            "windows).",
            f"sum(driftline_feature_drifting{{{MODEL}}})",
        ),
        stat_panel(
            "Worst feature vs its threshold",
            "The largest detector statistic as a share of its threshold: 1 or more is drift.",
            f"max(driftline_detector_statistic{{{MODEL}}} "
            f"/ driftline_detector_threshold{{{MODEL}}})",
            unit="percentunit",
            colors=steps((None, "green"), (0.7, "orange"), (1, "red")),
        ),
        stat_panel(
            "Failing data-quality checks",
            "Data-quality checks of this model failing now.",
            f"sum(driftline_data_quality_failing{{{MODEL}}})",
        ),
        stat_panel(
            "Events/s",
            "Predictions of this model processed per second.",
            f"sum(rate(driftline_events_processed_total{{{MODEL}}}[{RATE}]))",
            unit="ops",
            colors=NEUTRAL,
        ),
        stat_panel(
            "Retraining requests (24 h)",
            "Retraining requests published for this model in the last 24 hours.",
            f"sum(increase(driftline_retraining_requests_total{{{MODEL}}}[24h]))",
            colors=NEUTRAL,
        ),
        stat_panel(
            "Dead letters/s",
            "This model's messages or rows sent to the dead-letter topic per second (the "
            "message headers say why).",
            f"sum(rate(driftline_dead_letters_total{{{MODEL}}}[{RATE}]))",
            unit="ops",
            colors=steps((None, "green"), (0.001, "orange")),
        ),
        stat.Panel()
        .title("Live versions")
        .description(
            "The model's versions monitored now, each against its own reference profile; a "
            "retired version leaves. The gauges above carry no version label: during a "
            "rollout they show the newest version's values."
        )
        .with_target(
            query(f"max by (version) (driftline_live_versions{{{MODEL}}})", "version {{version}}")
        )
        .text_mode(BigValueTextMode.NAME)
        .thresholds(NEUTRAL)
        .height(4)
        .span(4),
    ]


def _model_drift() -> list[Panel]:
    """Each feature against its threshold over time."""
    return [
        series_panel(
            "Drift statistic vs threshold, per feature",
            "Each feature's detector statistic divided by its threshold (calibrated from the "
            "model's false-alarm budget). Crossing 1 is drift; how far above says how badly.",
            query(
                f"max by (feature) (driftline_detector_statistic{{{MODEL}}} "
                f"/ driftline_detector_threshold{{{MODEL}}})",
                "{{feature}}",
            ),
            unit="percentunit",
        )
        .thresholds_style(_threshold_line())
        .thresholds(OK_THEN_RED),
        timeline_panel(
            "Drifting since",
            "Per feature, when it signalled drift (red) and when it went quiet again.",
            query(f"max by (feature) (driftline_feature_drifting{{{MODEL}}})", "{{feature}}"),
        ),
        table_panel(
            "Detectors now",
            "Per feature and detector, the current statistic and threshold.",
            query(f"driftline_detector_statistic{{{MODEL}}}", ref="A", table_format=True),
            query(f"driftline_detector_threshold{{{MODEL}}}", ref="B", table_format=True),
            span=24,
        ).with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "__name__": True, "instance": True},
                    "renameByName": {"Value #A": "statistic", "Value #B": "threshold"},
                },
            )
        ),
    ]


def _model_quality() -> list[Panel]:
    """The data-quality checks over time."""
    return [
        series_panel(
            "Flagged events/s per feature and check",
            "Events each data-quality check flags (missing, type_error, out_of_range, "
            "unseen_category, constant; _schema: unexpected_field, model_version).",
            query(
                "sum by (feature, check) "
                f"(rate(driftline_data_quality_flagged_events_total{{{MODEL}}}[{RATE}]))",
                "{{feature}} {{check}}",
            ),
            unit="ops",
        ),
        timeline_panel(
            "Failing checks",
            "Per feature and check, when it failed (red). A drift alert during a red stretch "
            "is probably the break, not the world changing.",
            query(
                f"max by (feature, check) (driftline_data_quality_failing{{{MODEL}}})",
                "{{feature}} {{check}}",
            ),
        ),
    ]


def _model_predictions() -> list[Panel]:
    """Predictions against the reference profile's shares."""
    share_now = (
        f"sum by (bucket) (increase(driftline_predictions_total{{{MODEL}}}[$__range])) "
        f"/ scalar(sum(increase(driftline_predictions_total{{{MODEL}}}[$__range])))"
    )
    return [
        series_panel(
            "Prediction share per bucket",
            "Share of predictions in each bucket of the reference profile (its deciles for a "
            "numeric prediction, its classes otherwise), over time.",
            query(
                f"sum by (bucket) (rate(driftline_predictions_total{{{MODEL}}}[{RATE}])) "
                "/ ignoring(bucket) group_left "
                f"sum(rate(driftline_predictions_total{{{MODEL}}}[{RATE}]))",
                "{{bucket}}",
            ),
            unit="percentunit",
        ),
        bargauge.Panel()
        .title("Predictions in the time range vs the reference")
        .description(
            "Per bucket, the share of predictions over the dashboard's time range beside the "
            "reference profile's share. Deciles of the reference hold 10% each."
        )
        .with_target(query(share_now, "{{bucket}} now", ref="A"))
        .with_target(
            query(f"driftline_reference_prediction_share{{{MODEL}}}", "{{bucket}} ref", ref="B")
        )
        .unit("percentunit")
        .min(0)
        .thresholds(NEUTRAL)
        .height(8)
        .span(12),
    ]


def _model_performance() -> list[Panel]:
    """Realised and estimated performance against the baseline, label delay."""
    return [
        series_panel(
            "Performance (labelled events) vs baseline",
            "Each metric over the last complete window of labelled events (labels joined to "
            "their predictions), beside its value on the reference data. Alerts fire when the "
            "watched metric is worse than the baseline by more than the tolerance.",
            query(f"max by (metric) (driftline_performance{{{MODEL}}})", "{{metric}}", ref="A"),
            query(
                f"max by (metric) (driftline_performance_baseline{{{MODEL}}})",
                "{{metric}} baseline",
                ref="B",
            ),
            span=8,
        ),
        series_panel(
            "Estimated before labels (CBPE) vs baseline",
            "Binary classifiers with scores: accuracy and ROC AUC expected from the calibrated "
            "scores of the latest predictions, hours or days before their labels. Holds when "
            "inputs shift; blind to concept drift (the same inputs meaning other labels).",
            query(
                f"max by (metric) (driftline_performance_estimate{{{MODEL}}})",
                "{{metric}} estimated",
                ref="A",
            ),
            query(
                "max by (metric) "
                f'(driftline_performance_baseline{{{MODEL}, metric=~"accuracy|roc_auc"}})',
                "{{metric}} baseline",
                ref="B",
            ),
            span=8,
        ),
        series_panel(
            "Labels",
            "Labels per second by what the join did: joined to their prediction, waiting for "
            "it, expired without one; and predictions that expired without a label.",
            query(
                f"sum by (outcome) (rate(driftline_labels_total{{{MODEL}}}[{RATE}]))",
                "{{outcome}}",
            ),
            unit="ops",
            span=8,
        ),
        table_panel(
            "By version and segment (last closed time window)",
            "Each metric over the last closed time window of labels (performance."
            "window_seconds), for the whole model, per model version and per value of each "
            "configured segment: which version or segment carries a drop.",
            query(f"driftline_performance_by_time{{{MODEL}}}", table_format=True),
            span=24,
        ).with_transformation(
            DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"columnField": "metric", "rowField": "slice", "valueField": "Value"},
            )
        ),
        series_panel(
            "Label delay",
            "Event time from a prediction to its label (p50, p90): how long performance "
            "takes to be known, and what the estimate covers meanwhile.",
            *quantiles("driftline_label_delay_seconds", (0.5, 0.9)),
            unit="s",
        ),
    ]


def _model_alerts() -> list[Panel]:
    """Alerts raised and the processing behind them."""
    return [
        series_panel(
            "Alerts published",
            "Alert records this model's worker published, by kind and status.",
            query(
                f"sum by (kind, status) (increase(driftline_alerts_total{{{MODEL}}}[{RATE}]))",
                "{{kind}} {{status}}",
            ),
        ),
        series_panel(
            "Batch processing time",
            "Time to decode a message and run this model's detectors on it (p50, p99).",
            *quantiles("driftline_batch_processing_seconds", (0.5, 0.99)),
            unit="s",
        ),
    ]


def model() -> Dashboard:
    board = _dashboard(
        MODEL_UID,
        "driftline: model",
        "One model: which features drift and how badly since when, its data quality, its "
        "performance and the estimate before labels, its predictions against the reference, "
        "and the alerts it raised.",
        [
            ("Now", _model_now()),
            ("Drift", _model_drift()),
            ("Data quality", _model_quality()),
            ("Performance", _model_performance()),
            ("Predictions", _model_predictions()),
            ("Alerts and processing", _model_alerts()),
        ],
    )
    return board.with_variable(
        QueryVariable("model")
        .label("Model")
        .datasource(DATASOURCE)
        .query("label_values(driftline_events_processed_total, model)")
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
    ).annotation(
        AnnotationQuery()
        .name("driftline alerts")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("red")
        .expr(
            "sum by (kind, status) "
            f'(changes(driftline_alerts_total{{{MODEL}, status=~"firing|resolved"}}[2m])) > 0'
        )
    )


def _service_health() -> list[Panel]:
    """Is the worker keeping up with the stream."""
    return [
        series_panel(
            "Workers up",
            "1 per worker Prometheus scrapes; a gap is a worker down.",
            query(f"up{{{JOB}}}", "{{instance}}"),
            span=8,
        ),
        series_panel(
            "Messages/s per model",
            "Kafka messages decoded per second (a batched message carries many events).",
            query(f"sum by (model) (rate(driftline_batches_processed_total[{RATE}]))", "{{model}}"),
            unit="ops",
            span=8,
        ),
        series_panel(
            "Consumer lag per partition",
            "Prediction messages not yet processed, per partition and worker.",
            query("driftline_consumer_lag", "{{instance}} p{{partition}}"),
            span=8,
        ),
        series_panel(
            "Batch processing time (p99)",
            "Time to decode one message and run its model's detectors, 99th percentile.",
            query(
                "histogram_quantile(0.99, sum by (le, model) "
                f"(rate(driftline_batch_processing_seconds_bucket[{RATE}])))",
                "{{model}}",
            ),
            unit="s",
            span=8,
        ),
        series_panel(
            "Dead letters/s by reason",
            "Messages or rows the worker could not use, by reason (undecodable, "
            "unknown_model, schema, oversize, ...). The dead-letter topic keeps them.",
            query(f"sum by (reason) (rate(driftline_dead_letters_total[{RATE}]))", "{{reason}}"),
            unit="ops",
            span=8,
        ),
        series_panel(
            "Messages skipped as already applied",
            "Messages delivered again after a restart or rebalance and skipped, per model: "
            "the proof nothing was counted twice.",
            query(
                f"sum by (model) (rate(driftline_replayed_messages_skipped_total[{RATE}]))",
                "{{model}}",
            ),
            unit="ops",
            span=8,
        ),
    ]


def _service_delivery() -> list[Panel]:
    """Are alerts reaching their receivers."""
    return [
        series_panel(
            "Notifications by outcome",
            "Alerts and retraining requests handed to each receiver: delivered, parked on the "
            "dead-letter topic after every retry failed, or skipped as already delivered.",
            query(
                f"sum by (receiver, outcome) (increase(driftline_notifications_total[{RATE}]))",
                "{{receiver}} {{outcome}}",
            ),
        ),
        series_panel(
            "Delivery attempts by result",
            "HTTP attempts per receiver and result: retries show up here before anything is "
            "parked.",
            query(
                f"sum by (receiver, result) (rate(driftline_notification_attempts_total[{RATE}]))",
                "{{receiver}} {{result}}",
            ),
            unit="ops",
        ),
        series_panel(
            "Retraining requests",
            "Retraining requests published per model and kind, per hour.",
            query(
                "sum by (model, kind) (increase(driftline_retraining_requests_total[1h]))",
                "{{model}} {{kind}}",
            ),
        ),
    ]


def _service_process() -> list[Panel]:
    """The worker processes' resources."""
    return [
        series_panel(
            "Memory (resident)",
            "Resident memory per worker: detector state is bounded, so this should be flat.",
            query(f"process_resident_memory_bytes{{{JOB}}}", "{{instance}}"),
            unit="bytes",
        ),
        series_panel(
            "CPU",
            "CPU cores used per worker. Near 1: the worker is CPU-bound; add workers.",
            query(f"rate(process_cpu_seconds_total{{{JOB}}}[{RATE}])", "{{instance}}"),
            unit="short",
        ),
    ]


def service() -> Dashboard:
    return _dashboard(
        SERVICE_UID,
        "driftline: service health",
        "Is driftline itself healthy: workers up, keeping up with the stream, input it cannot "
        "use, alerts reaching people, resources.",
        [
            ("Stream", _service_health()),
            ("Delivery", _service_delivery()),
            ("Process", _service_process()),
        ],
    )


def _threshold_line() -> Any:
    from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
    from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode

    return GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE)


DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "driftline-fleet.json": fleet,
    "driftline-model.json": model,
    "driftline-service.json": service,
}


def render() -> dict[str, str]:
    """File name -> dashboard JSON text, deterministic (sorted keys, panel ids in order)."""
    out = {}
    for name, build in DASHBOARDS.items():
        doc = json.loads(JSONEncoder().encode(build().build()))
        for number, panel in enumerate(_all_panels(doc), start=1):
            panel["id"] = number
        for annotation in doc.get("annotations", {}).get("list", []):
            # Prometheus annotation fields the SDK's generic AnnotationQuery does not model
            annotation.setdefault("titleFormat", "{{kind}} alert {{status}}")
            annotation.setdefault("tagKeys", "kind,status")
            annotation.setdefault("step", "30s")
        out[name] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return out


def _all_panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in doc.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Every PromQL expression of a dashboard as (where, expr): panels, annotations, variables.

    A variable's ``label_values(metric, label)`` is returned as ``metric``.
    """
    found = []
    for panel in _all_panels(doc):
        for target in panel.get("targets", []):
            found.append(
                (f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"])
            )
    for annotation in doc.get("annotations", {}).get("list", []):
        found.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    for variable in doc.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            metric = variable["query"].removeprefix("label_values(").split(",")[0]
            found.append((f"variable {variable['name']}", metric))
    return found


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


FOLDER_UID = "driftline"
TOKEN_ENV, USER_ENV, PASSWORD_ENV = "GRAFANA_TOKEN", "GRAFANA_USER", "GRAFANA_PASSWORD"


class PushError(Exception):
    pass


def push(url: str, directory: Path, env: dict[str, str], folder: str = "driftline") -> list[str]:
    """Upload every dashboard in ``directory`` to the Grafana at ``url``, into ``folder``.

    Credentials come from the environment only (a service-account token in GRAFANA_TOKEN, or
    GRAFANA_USER and GRAFANA_PASSWORD): a URL or a flag with a secret ends up in shell history
    and process lists. Existing dashboards with the same uid are overwritten (a new version).
    """
    from urllib.parse import urlsplit

    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException

    parts = urlsplit(url)
    if parts.username or parts.password:
        raise PushError(
            f"put the credentials in {TOKEN_ENV} (or {USER_ENV} and {PASSWORD_ENV}), not in the URL"
        )
    credential: str | tuple[str, str] | None = env.get(TOKEN_ENV) or None
    if credential is None and env.get(USER_ENV):
        credential = (env[USER_ENV], env.get(PASSWORD_ENV, ""))
    files = sorted(directory.glob("*.json"))
    if not files:
        raise PushError(f"no dashboards (*.json) in {directory}")
    api = GrafanaApi.from_url(url, credential=credential)
    pushed = []
    try:
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(folder, uid=FOLDER_UID)
        for path in files:
            doc = json.loads(path.read_text())
            doc.pop("id", None)  # Grafana's own id; the uid says which dashboard this is
            api.dashboard.update_dashboard(
                {
                    "dashboard": doc,
                    "folderUid": FOLDER_UID,
                    "overwrite": True,
                    "message": f"driftline dashboards push ({path.name})",
                }
            )
            pushed.append(doc["uid"])
    except GrafanaException as exc:
        # the client's message holds the status and Grafana's answer, never the credentials
        raise PushError(f"Grafana at {url} refused: HTTP {exc.status_code} {exc}") from None
    except OSError as exc:
        raise PushError(f"cannot reach Grafana at {url}: {exc}") from None
    return pushed


def stale(directory: Path) -> list[str]:
    """Dashboards whose file is missing or differs from what the generator writes now."""
    return [
        name
        for name, text in render().items()
        if not (directory / name).exists() or (directory / name).read_text() != text
    ]
