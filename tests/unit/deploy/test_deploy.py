"""The Alertmanager path: Prometheus rules and Alertmanager config checked by their own tools.

promtool and amtool come from the Debian packages prometheus and prometheus-alertmanager
(installed by scripts/system-deps.sh).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from driftline.config import config_from_dict
from driftline.observability.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
RULES = DEPLOY / "prometheus" / "alert-rules.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_promtool_checks_the_rules_and_the_prometheus_config() -> None:
    rules = tool("promtool", "check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 9 rules found" in rules.stdout
    for name in ("prometheus.yml", "local.yml"):  # the compose stack's, and without Docker
        config = tool("promtool", "check", "config", str(DEPLOY / "prometheus" / name))
        assert config.returncode == 0, config.stdout + config.stderr
        assert "SUCCESS" in config.stdout + config.stderr


def test_the_rules_fire_and_stay_quiet_as_their_unit_tests_say() -> None:
    result = tool("promtool", "test", "rules", str(DEPLOY / "prometheus" / "alert-rules.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_checks_the_alertmanager_config_and_its_routes() -> None:
    result = tool("amtool", "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 receivers" in result.stdout

    def route(*labels: str) -> str:
        out = tool("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
        return out.stdout.strip()

    assert route("severity=critical", "alertname=DriftlineWorkerDown") == "slack-oncall"
    assert route("severity=critical", "alertname=DriftlineManyFeaturesDrifting") == "slack-oncall"
    assert route("severity=warning", "alertname=DriftlineFeaturesDrifting") == "slack-ml-monitoring"


def test_the_slack_webhook_url_is_read_from_a_file_not_written_in_the_config() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        for slack in receiver["slack_configs"]:
            assert "api_url" not in slack and slack["api_url_file"].startswith("/etc/")
    assert "hooks.slack.com" not in ALERTMANAGER.read_text()


@pytest.mark.parametrize("path", [RULES, DEPLOY / "prometheus" / "alert-rules.test.yml"])
def test_every_metric_the_rules_use_is_one_the_worker_exports(path: Path) -> None:
    config = config_from_dict({"models": {"m": {"task": "binary", "features": {"x": "numeric"}}}})
    registry = CollectorRegistry()
    WorkerMetrics(config, registry)
    suffixes = ("", "_total", "_bucket", "_count", "_sum")  # the series a family exposes
    exported = {family.name + x for family in registry.collect() for x in suffixes}
    used = set(re.findall(r"\bdriftline_[a-z_]+", path.read_text()))
    assert used, "no driftline metric found: the check would be empty"
    assert used <= exported, used - exported
