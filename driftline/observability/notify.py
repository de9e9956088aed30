"""Delivering alerts and retraining requests over HTTP: Slack incoming webhooks and JSON webhooks.

``Notifier.deliver`` posts one record to one receiver and retries on 429 (waiting what
Retry-After says), on 5xx, timeouts and refused connections, with exponential backoff and
jitter, until ``give_up_after_seconds``; other 4xx answers will not get better and end at
once. A Retry-After that reaches past the give-up time is obeyed once, for one last attempt,
if it is at most ``max_retry_after_seconds``; a longer one parks the record at once. The
caller (``runtime/delivery.py``: a lane per receiver, so a receiver's waits delay only itself)
notes each delivery on a compacted topic, so a record is posted once per receiver even when it
is read again after a restart, and parks what could not be delivered on the dead-letter topic.

Webhook URLs are secrets (Slack's carries the token in its path): they are read from the
environment once, and nothing here logs, counts or raises with a URL in it, only the
receiver's name.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from driftline.config import NotificationSettings, ReceiverSettings
from driftline.events.records import Alert, FeatureEvidence, RetrainingRequest
from driftline.observability.metrics import WorkerMetrics

log = logging.getLogger(__name__)

#: the model dashboard's uid (dashboards/ are generated with it)
MODEL_DASHBOARD_UID = "driftline-model"

# Slack's documented limits for the blocks used here.
HEADER_MAX = 150
TEXT_MAX = 3000
FIELD_MAX = 2000


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    result: str  # the last attempt's result: ok, http_429, http_5xx, http_4xx, timeout, ...

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)


class Notifier:
    def __init__(
        self,
        settings: NotificationSettings,
        metrics: WorkerMetrics | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def routes(self, alert: Alert) -> list[str]:
        """Receivers for an alert: every route whose models, severities and kinds match."""
        names: list[str] = []
        for route in self.settings.routes:
            if route.models is not None and alert.model_id not in route.models:
                continue
            if route.severities is not None and alert.severity not in route.severities:
                continue
            if route.kinds is not None and alert.kind not in route.kinds:
                continue
            names.extend(n for n in route.receivers if n not in names)
        return names

    def body(self, receiver: ReceiverSettings, record: Alert | RetrainingRequest) -> bytes:
        if receiver.type == "slack":
            if isinstance(record, Alert):
                return orjson.dumps(
                    slack_message(record, self.settings.grafana_url, self.settings.status_url)
                )
            return orjson.dumps(slack_retraining_message(record))
        return record.to_json()  # the generic webhook gets the record as on the topic

    async def deliver(self, name: str, record: Alert | RetrainingRequest) -> Delivery:
        """Post ``record`` to receiver ``name``, retrying until it succeeds or the budget ends."""
        receiver = self.settings.receivers[name]
        assert receiver.url is not None  # resolved when the config was loaded
        policy = self.settings.delivery
        body = self.body(receiver, record)
        headers = {"Content-Type": "application/json"}
        if isinstance(record, Alert):
            headers["Idempotency-Key"] = record.delivery_key
        else:
            headers["Idempotency-Key"] = record.idempotency_key
        deadline = time.monotonic() + policy.give_up_after_seconds
        backoff = policy.initial_backoff_seconds
        attempts = 0
        extended = False  # the deadline moved once for a Retry-After
        while True:
            attempts += 1
            # Its own task: aiohttp enforces its timeout by cancelling the task that runs the
            # request, and a late cancel must not land in the caller's next await.
            result, retry_after = await asyncio.create_task(self._post(receiver, body, headers))
            self._count_attempt(name, result)
            if result == "ok":
                return Delivery(True, attempts, result)
            if (
                result == "http_4xx"
            ):  # a malformed message or a revoked webhook: retrying won't help
                log.error("receiver %s refused a record (%s); parking it", name, result)
                return Delivery(False, attempts, result)
            wait = retry_after if retry_after is not None else backoff * random.uniform(0.8, 1.2)
            now = time.monotonic()
            if now + wait > deadline and _last_attempt_asked_for(
                retry_after, policy.max_retry_after_seconds, extended
            ):
                # The receiver said when to come back: once, within the cap, that is worth
                # more than the give-up time (only this receiver's lane waits).
                extended = True
                deadline = now + wait
            if now + wait > deadline:
                log.error(
                    "receiver %s: giving up after %d attempts (last: %s); parking it",
                    name,
                    attempts,
                    result,
                )
                return Delivery(False, attempts, result)
            log.warning(
                "receiver %s: attempt %d failed (%s), retrying in %.1f s",
                name,
                attempts,
                result,
                wait,
            )
            await self._sleep(wait)
            backoff = min(backoff * 2, policy.max_backoff_seconds)

    async def _post(
        self, receiver: ReceiverSettings, body: bytes, headers: dict[str, str]
    ) -> tuple[str, float | None]:
        assert receiver.url is not None
        timeout = aiohttp.ClientTimeout(total=self.settings.delivery.timeout_seconds)
        try:
            session = self._client()
            async with session.post(
                receiver.url.get_secret_value(), data=body, headers=headers, timeout=timeout
            ) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return "ok", None
                if resp.status == 429:
                    return "http_429", retry_after_seconds(resp.headers.get("Retry-After"))
                if resp.status >= 500:
                    return "http_5xx", retry_after_seconds(resp.headers.get("Retry-After"))
                return "http_4xx", None
        except TimeoutError:
            return "timeout", None
        except aiohttp.ClientError as exc:
            # The exception's text can hold the URL: keep only its class.
            return f"error_{type(exc).__name__}"[:40], None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _count_attempt(self, name: str, result: str) -> None:
        if self.metrics is not None:
            label = result if result.startswith("http_") or result in ("ok", "timeout") else "error"
            self.metrics.notification_attempts.labels(name, label).inc()

    def count(self, name: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(name, outcome).inc()


def _last_attempt_asked_for(retry_after: float | None, cap: float, extended: bool) -> bool:
    return retry_after is not None and retry_after <= cap and not extended


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delay-seconds or an HTTP date (RFC 9110, 10.2.3).

    >>> retry_after_seconds("7")
    7.0
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)
    10.0
    >>> retry_after_seconds("soon") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def dashboard_link(grafana_url: str, alert: Alert) -> str:
    """The model dashboard for the alert's model, over the alert's time window."""
    margin = 15 * 60
    params = {
        "var-model": alert.model_id,
        "from": int((alert.first_event_time - margin) * 1000),
        "to": int((alert.last_event_time + margin) * 1000),
    }
    base = grafana_url.rstrip("/")
    return f"{base}/d/{MODEL_DASHBOARD_UID}/driftline-model?{urlencode(params)}"


def _evidence_line(f: FeatureEvidence) -> str:
    """One feature's evidence: a rate against the reference for data-quality checks, the
    statistic against its threshold for detectors."""
    if f.rate is not None or f.examples:
        line = f"• `{_md(f.feature)}` {_md(f.detector)}"
        if f.rate is not None:
            line += f" {f.rate:.0%} of events"
            if f.reference_rate is not None:
                line += f" (reference {f.reference_rate:.1%})"
        if f.examples:
            line += ", e.g. " + ", ".join(f"`{_md(e)}`" for e in f.examples[:3])
        return line
    return (
        f"• `{_md(f.feature)}` {_md(f.detector)} {f.statistic:.2f} / {f.threshold:.2f}"
        f" ({f.signals} signal{'s' if f.signals != 1 else ''}, excess {f.excess:.1f})"
    )


def status_link(status_url: str, alert: Alert) -> str:
    """The alert's model on the status page, the alert marked."""
    base = status_url.rstrip("/")
    return f"{base}/model/{quote(alert.model_id, safe='')}?{urlencode({'alert': alert.alert_id})}"


def slack_message(
    alert: Alert, grafana_url: str | None = None, status_url: str | None = None
) -> dict[str, Any]:
    """A Slack incoming-webhook message in Block Kit: title, severity, model, top features,
    time window, the dedup id and a dashboard link (Grafana's, or else the status page's);
    ``text`` is the notification fallback."""
    firing = alert.status == "firing"
    icons = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
    icon = icons.get(alert.severity, "") if firing else ""
    kind = alert.kind.replace("_", " ")
    if firing:
        title = f"{icon} {alert.severity.upper()}: {kind} on {alert.model_id}"
        if alert.update:
            title += f" (update {alert.update})"
    else:
        title = f":white_check_mark: RESOLVED: {kind} on {alert.model_id}"
    lines = [_evidence_line(f) for f in alert.features]
    if alert.new_features:
        new = ", ".join(f"`{_md(f)}`" for f in alert.new_features)
        lines.insert(0, f":new: drifting since the last message: {new}")
    more = alert.features_drifting - len(alert.features)
    if more > 0:
        lines.append(f"… and {more} more")
    if alert.data_quality:
        problems = ", ".join(f"`{_md(p)}`" for p in alert.data_quality)
        lines.append(f":wrench: data-quality problem open on {problems}: check the pipeline first")
    header = "*Top features*" if firing else "*Features in the episode*"
    fields = [
        f"*Model*\n{_md(alert.model_id)} (version {_md(alert.model_version)})",
        f"*Severity*\n{alert.severity}",
        f"*Window*\n{_when(alert.first_event_time)} → {_when(alert.last_event_time)}",
        f"*Events*\n{alert.window_start_event:,} → {alert.events_seen:,}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:HEADER_MAX]}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f[:FIELD_MAX]} for f in fields],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "\n".join([header, *lines])[:TEXT_MAX]},
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": (
                        f"alert id `{alert.alert_id}` · reference {_md(alert.reference_version)}"
                        f" · driftline"
                    ),
                }
            ],
        },
    ]
    link = None
    if grafana_url:
        link = ("Open dashboard", dashboard_link(grafana_url, alert))
    elif status_url:
        link = ("Open status page", status_link(status_url, alert))
    if link is not None:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": link[0]},
                        "url": link[1],
                    }
                ],
            }
        )
    fallback = _md(f"{title} ({alert.alert_id}): {alert.message}")  # mrkdwn, unlike the header
    return {"text": fallback[:TEXT_MAX], "blocks": blocks}


def slack_retraining_message(request: RetrainingRequest) -> dict[str, Any]:
    title = f":repeat: Retraining requested for {request.model_id}"
    text = (
        f"*Reason*\n{_md(request.reason)}\n*Drifted features*\n"
        + ", ".join(f"`{_md(f)}`" for f in request.features[:20])
        + f"\n*Retrain against reference* {_md(request.reference_version)}"
    )
    return {
        "text": _md(f"{title}: {request.reason}")[:TEXT_MAX],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:HEADER_MAX]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": text[:TEXT_MAX]}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"idempotency key `{request.idempotency_key}`"}
                ],
            },
        ],
    }


def _md(text: str) -> str:
    """Escape what Slack's mrkdwn treats as control characters (model and feature names)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
