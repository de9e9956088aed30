"""Slack and webhook delivery against a real HTTP server on loopback (tests/fake_slack.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from driftline.config import ConfigError, config_from_dict
from driftline.events.records import Alert, FeatureEvidence
from driftline.observability.metrics import WorkerMetrics
from driftline.observability.notify import Notifier, slack_message
from tests.fake_slack import FakeSlack, fake_slack

FAST = {
    "timeout_seconds": 0.5,
    "initial_backoff_seconds": 0.05,
    "max_backoff_seconds": 0.2,
    "give_up_after_seconds": 5.0,
}


def make_alert(**changes: Any) -> Alert:
    features = [
        FeatureEvidence(f"feature_{i}", "cusum", 20.0 - i, 17.5, 30_100 + i, 5 - i // 3, 5.0 - i)
        for i in range(12)
    ]
    doc: dict[str, Any] = {
        "alert_id": "3f2a9c0d1b7e4a5f6c8d",
        "status": "firing",
        "severity": "critical",
        "kind": "drift",
        "model_id": "eta",
        "model_version": "3",
        "feature": "feature_0",
        "detector": "cusum",
        "statistic": 20.0,
        "threshold": 17.5,
        "events_seen": 30_200,
        "first_event_time": 1_764_000_000.0,
        "last_event_time": 1_764_000_100.0,
        "reference_version": "a1b2c3d4e5f6",
        "message": "Drift on eta: 14 features",
        "created_at": 1_764_000_101.0,
        "features": features[:10],
        "window_start_event": 30_100,
        "features_drifting": 14,
    }
    doc.update(changes)
    return Alert(**doc)


def notifier(
    urls: dict[str, str], routes: list[dict[str, Any]] | None = None, **delivery: Any
) -> tuple[Notifier, WorkerMetrics]:
    env = {f"HOOK_{i}": url for i, url in enumerate(urls.values())}
    receivers = {
        name: {"type": "webhook" if name.startswith("hook") else "slack", "url_env": f"HOOK_{i}"}
        for i, name in enumerate(urls)
    }
    config = config_from_dict(
        {
            "models": {"eta": {"task": "regression", "features": {"x": "numeric"}}},
            "notifications": {
                "receivers": receivers,
                "routes": routes or [{"receivers": list(urls)}],
                "delivery": {**FAST, **delivery},
                "grafana_url": "http://grafana.example:3000",
            },
        },
        env=env,
    )
    metrics = WorkerMetrics(config, CollectorRegistry())
    return Notifier(config.notifications, metrics), metrics


def deliver(n: Notifier, name: str, alert: Alert) -> Any:
    async def go() -> Any:
        try:
            return await n.deliver(name, alert)
        finally:
            await n.close()

    return asyncio.run(go())


def check_block_kit(message: dict[str, Any]) -> None:
    """Slack's incoming-webhook format and the documented limits of the blocks we use."""
    assert isinstance(message["text"], str) and message["text"]
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        kind = block["type"]
        assert kind in {"header", "section", "context", "actions", "divider"}
        if kind == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= 150
        if kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert block["text"]["type"] in {"mrkdwn", "plain_text"}
                assert 0 < len(block["text"]["text"]) <= 3000
            for f in block.get("fields", []):
                assert f["type"] in {"mrkdwn", "plain_text"} and 0 < len(f["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        if kind == "context":
            assert 1 <= len(block["elements"]) <= 10
        if kind == "actions":
            for element in block["elements"]:
                assert element["type"] == "button"
                assert element["text"]["type"] == "plain_text"
                assert element["url"].startswith("http") and len(element["url"]) <= 3000


def test_slack_message_is_block_kit_with_the_evidence() -> None:
    message = slack_message(make_alert(), "http://grafana.example:3000/")
    check_block_kit(message)
    text = str(message)
    assert "CRITICAL" in message["blocks"][0]["text"]["text"]
    assert "`feature_0` cusum 20.00 / 17.50" in text and "… and 4 more" in text
    assert "3f2a9c0d1b7e4a5f6c8d" in text  # the dedup id, for people and for dedup
    assert "version 3" in text and "30,100 → 30,200" in text
    button = message["blocks"][-1]["elements"][0]
    assert button["url"].startswith("http://grafana.example:3000/d/driftline-model/")
    assert "var-model=eta" in button["url"]
    resolved = slack_message(make_alert(status="resolved"), None)
    check_block_kit(resolved)
    assert "RESOLVED" in resolved["blocks"][0]["text"]["text"]
    assert all(b["type"] != "actions" for b in resolved["blocks"])  # no Grafana configured
    # names that look like Slack markup are escaped, not interpreted
    odd = slack_message(make_alert(model_id="<!channel> & co"), None)
    mrkdwn = str([odd["text"], odd["blocks"][1:]])  # the header is plain_text: shown as is
    assert "<!channel>" not in mrkdwn and "&lt;!channel&gt; &amp; co" in mrkdwn


def test_without_grafana_slack_links_the_alert_on_the_status_page() -> None:
    alert = make_alert(model_id="eta/eu west")
    message = slack_message(alert, None, "http://127.0.0.1:8900/")
    check_block_kit(message)
    button = message["blocks"][-1]["elements"][0]
    assert button["text"]["text"] == "Open status page"
    assert button["url"] == f"http://127.0.0.1:8900/model/eta%2Feu%20west?alert={alert.alert_id}"
    both = slack_message(alert, "http://grafana.example:3000", "http://127.0.0.1:8900")
    assert both["blocks"][-1]["elements"][0]["text"]["text"] == "Open dashboard"


def test_slack_message_for_data_quality_shows_rates_and_examples() -> None:
    evidence = FeatureEvidence(
        "color", "unseen_category", 19.7, 17.1, 3_033, 9, 9.0, 0.22, 0.0, ["ultra<violet>"]
    )
    message = slack_message(make_alert(kind="data_quality", features=[evidence]), None)
    check_block_kit(message)
    text = str(message)
    assert "data quality on eta" in message["blocks"][0]["text"]["text"]
    assert "`color` unseen_category 22% of events (reference 0.0%)" in text
    assert "`ultra&lt;violet&gt;`" in text  # examples are escaped like every name
    drift = slack_message(make_alert(data_quality=["feature_0: out_of_range"]), None)
    assert "data-quality problem open on `feature_0: out_of_range`" in str(drift)


def test_delivers_once_on_success_and_posts_to_the_secret_path() -> None:
    with fake_slack() as slack:
        n, metrics = notifier({"oncall": slack.url})
        outcome = deliver(n, "oncall", make_alert())
    assert outcome.delivered and outcome.attempts == 1
    (got,) = slack.received
    assert got.path == FakeSlack.PATH
    assert got.headers["Content-Type"] == "application/json"
    check_block_kit(got.json())
    sample = metrics.notification_attempts.labels("oncall", "ok")._value.get()
    assert sample == 1


@pytest.mark.parametrize(
    ("script", "attempts"),
    [
        ([500, 502, 503], 4),
        ([("hang", 1.5)], 2),  # longer than the 0.5 s timeout
        ([(429, 1)], 2),
    ],
)
def test_retries_5xx_timeouts_and_429_then_delivers(script: list[Any], attempts: int) -> None:
    with fake_slack() as slack:
        slack.script = list(script)
        n, _ = notifier({"oncall": slack.url})
        started = time.monotonic()
        outcome = deliver(n, "oncall", make_alert())
        took = time.monotonic() - started
    assert outcome.delivered and outcome.attempts == attempts
    assert len(slack.delivered()) == 1
    if script[0] == (429, 1):  # Retry-After honoured, not the 0.05 s backoff
        assert slack.received[1].at - slack.received[0].at >= 0.95 and took >= 0.95


def test_gives_up_after_the_budget_and_never_logs_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with fake_slack() as slack:
        slack.outage = True
        n, _ = notifier({"oncall": slack.url}, give_up_after_seconds=1.0)
        outcome = deliver(n, "oncall", make_alert())
        refused = notifier({"oncall": slack.url})[0]
        slack.outage, slack.script = False, [400]
        bad = deliver(refused, "oncall", make_alert())
    assert not outcome.delivered and outcome.result == "http_5xx" and outcome.attempts > 3
    assert not bad.delivered and bad.attempts == 1  # 400 will not get better: no retries
    assert "giving up" in caplog.text and "oncall" in caplog.text
    assert "s3cr3t" not in caplog.text and "127.0.0.1:" not in caplog.text


def test_connection_refused_is_retried_without_leaking_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fake_slack() as slack:
        url = slack.url
    # the server is gone: nothing listens on that port any more
    n, metrics = notifier({"oncall": url}, give_up_after_seconds=0.5)
    outcome = deliver(n, "oncall", make_alert())
    assert not outcome.delivered and outcome.result.startswith("error_")
    assert metrics.notification_attempts.labels("oncall", "error")._value.get() >= 2
    assert "s3cr3t" not in caplog.text


def test_routes_by_model_severity_and_kind() -> None:
    routes = [
        {"receivers": ["pager"], "severities": ["critical"]},
        {"receivers": ["hook-ml"], "models": ["eta"], "kinds": ["drift", "performance"]},
        {"receivers": ["pager", "hook-ml"], "kinds": ["data_quality"]},
    ]
    n, _ = notifier({"pager": "http://127.0.0.1:9/a", "hook-ml": "http://127.0.0.1:9/b"}, routes)
    assert n.routes(make_alert()) == ["pager", "hook-ml"]
    assert n.routes(make_alert(severity="warning")) == ["hook-ml"]
    assert n.routes(make_alert(severity="warning", kind="data_quality")) == ["pager", "hook-ml"]


def test_generic_webhook_gets_the_alert_record() -> None:
    with fake_slack() as hook:
        n, _ = notifier({"hook-ml": hook.url})
        alert = make_alert()
        assert deliver(n, "hook-ml", alert).delivered
    (got,) = hook.received
    assert Alert.from_json(got.body) == alert
    assert got.headers["Idempotency-Key"] == f"{alert.alert_id}/firing"
    with fake_slack() as hook:
        n, _ = notifier({"hook-ml": hook.url})
        assert deliver(n, "hook-ml", make_alert(update=2, new_features=["feature_9"])).delivered
    (got,) = hook.received  # an update is a record of its own for the receiver
    assert got.headers["Idempotency-Key"] == f"{alert.alert_id}/firing/2"


def test_an_update_says_so_and_names_the_features_that_joined() -> None:
    message = slack_message(make_alert(update=1, new_features=["feature_9", "<b>"]), None)
    check_block_kit(message)
    assert message["blocks"][0]["text"]["text"].endswith("drift on eta (update 1)")
    body = message["blocks"][2]["text"]["text"]
    assert body.splitlines()[1] == ":new: drifting since the last message: `feature_9`, `&lt;b&gt;`"


def test_receiver_config_fails_fast_naming_the_key_without_the_secret() -> None:
    base: dict[str, Any] = {"models": {"eta": {"task": "binary", "features": {"x": "numeric"}}}}
    missing = {**base, "notifications": {"receivers": {"s": {"type": "slack", "url_env": "NOPE"}}}}
    with pytest.raises(ConfigError, match=r"notifications\.receivers\.s\.url_env: .*NOPE"):
        config_from_dict(missing, env={})
    with pytest.raises(ConfigError, match="does not hold an http") as err:
        config_from_dict(missing, env={"NOPE": "ftp://hooks.example/s3cr3t"})
    assert "s3cr3t" not in str(err.value)
    unknown = {
        **base,
        "notifications": {"routes": [{"receivers": ["ghost"]}]},
    }
    with pytest.raises(ConfigError, match=r"notifications\.routes\.0\.receivers: 'ghost'"):
        config_from_dict(unknown, env={})
    config = config_from_dict(missing, env={"NOPE": "https://hooks.example/s3cr3t"})
    assert "s3cr3t" not in repr(config) and "s3cr3t" not in config.model_dump_json()


def test_a_retry_after_past_the_give_up_time_gets_one_last_attempt_then() -> None:
    with fake_slack() as slack:
        slack.script = [(429, 1), (429, 1)]
        n, _ = notifier({"oncall": slack.url}, give_up_after_seconds=0.5)
        started = time.monotonic()
        outcome = deliver(n, "oncall", make_alert())
        took = time.monotonic() - started
    # the first Retry-After (1 s) reaches past the 0.5 s give-up time: obeyed once; the second
    # would extend it again, so the record is parked after the second attempt
    assert not outcome.delivered and outcome.attempts == 2 and outcome.result == "http_429"
    assert took >= 0.95
    assert slack.received[1].at - slack.received[0].at >= 0.95


def test_a_retry_after_beyond_the_cap_parks_at_once() -> None:
    with fake_slack() as slack:
        slack.script = [(429, 5)]
        n, _ = notifier({"oncall": slack.url}, give_up_after_seconds=0.5, max_retry_after_seconds=2)
        started = time.monotonic()
        outcome = deliver(n, "oncall", make_alert())
    assert not outcome.delivered and outcome.attempts == 1
    assert time.monotonic() - started < 2


def test_a_retry_after_past_the_give_up_time_then_success_delivers() -> None:
    with fake_slack() as slack:
        slack.script = [(429, 1)]
        n, _ = notifier({"oncall": slack.url}, give_up_after_seconds=0.5)
        outcome = deliver(n, "oncall", make_alert())
    assert outcome.delivered and outcome.attempts == 2
