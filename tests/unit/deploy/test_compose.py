"""The docker-compose stack: valid for docker-compose, and its parts fit together.

No Docker daemon here: ``docker-compose config`` (the Debian package) validates the file and
prints it normalised; the checks below read that and the files it mounts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.cli.demo.scenario import FEATURES
from driftline.config import load_config
from driftline.runtime.localkafka import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: run scripts/system-deps.sh (make setup)")
    return subprocess.run(
        ["docker-compose", "--project-directory", str(PROJECT_ROOT), "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    out = compose_config(COMPOSE)
    assert out.returncode == 0, out.stderr
    return dict(yaml.safe_load(out.stdout))


def test_docker_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text().replace("condition: service_healthy", "condition: when_ready")
    broken.write_text(text)
    out = compose_config(broken)
    assert out.returncode != 0 and "condition" in out.stderr


def test_the_stack_has_every_part(stack: dict[str, Any]) -> None:
    assert set(stack["services"]) == {
        "kafka",
        "demo-profile",
        "driftline-worker",
        "demo-producer",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert stack["services"]["kafka"]["image"].startswith("apache/kafka:")
    for name in ("demo-profile", "driftline-worker", "demo-producer"):
        assert Path(stack["services"][name]["build"]["context"]) == PROJECT_ROOT
    assert (PROJECT_ROOT / "Dockerfile").exists()


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the service's bind mounts (named volumes left out)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("/"):
            assert Path(source).exists(), f"mounted {source} does not exist"
            out[target] = source
    return out


def test_the_worker_config_fits_kafka_prometheus_and_the_demo(stack: dict[str, Any]) -> None:
    services = stack["services"]
    worker = services["driftline-worker"]
    command = worker["command"]
    config_in_container = command[command.index("--config") + 1]
    config = load_config(mounts(worker)[config_in_container])  # fails fast if invalid
    assert services["demo-producer"]["command"][3] == config_in_container
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert advertised == f"PLAINTEXT://{config.kafka.bootstrap_servers}"
    assert dict(config.models["eta"].features) == FEATURES
    profile_dir = services["demo-profile"]["command"][-1]
    for model in ("eta", "late"):
        assert str(config.reference_path(model)) == f"{profile_dir}/{model}.profile.json"
    prometheus = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["job_name"] == "driftline"  # the dashboards' and rules' job label
    assert job["static_configs"][0]["targets"] == [f"driftline-worker:{config.worker.metrics_port}"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]


def test_prometheus_gets_its_rules_and_alertmanager_its_secrets(stack: dict[str, Any]) -> None:
    services = stack["services"]
    prom_dir = Path(mounts(services["prometheus"])["/etc/prometheus"])
    for rule_file in yaml.safe_load((prom_dir / "prometheus.yml").read_text())["rule_files"]:
        assert (prom_dir / rule_file).exists()
    am = mounts(services["alertmanager"])
    config = yaml.safe_load(Path(am["/etc/alertmanager/alertmanager.yml"]).read_text())
    for receiver in config["receivers"]:
        for slack in receiver["slack_configs"]:
            path = Path(slack["api_url_file"])
            host = Path(am[str(path.parent)]) / path.name
            assert host.read_text().startswith("http"), host


def test_grafana_is_provisioned_with_the_dashboards(stack: dict[str, Any]) -> None:
    grafana = stack["services"]["grafana"]
    paths = mounts(grafana)
    provisioning = Path(paths["/etc/grafana/provisioning"])
    provider = yaml.safe_load((provisioning / "dashboards/driftline.yml").read_text())
    folder = provider["providers"][0]["options"]["path"]
    assert Path(paths[folder]) == PROJECT_ROOT / "dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (PROJECT_ROOT / "dashboards" / Path(home).name).exists() and home.startswith(folder)
    # the image runs the Grafana version whose schema the generator is pinned to
    assert grafana["image"] == "grafana/grafana:11.6.0"
