from __future__ import annotations

from pathlib import Path

import pytest

from driftline.config import ConfigError, config_from_dict, load_config

GOOD = """
kafka:
  bootstrap_servers: 127.0.0.1:9092
models:
  eta:
    task: regression
    features: {distance_km: numeric, city: categorical}
"""


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.models["eta"].features == {"distance_km": "numeric", "city": "categorical"}
    assert config.models["eta"].false_alarm_budget == 1_000_000
    assert config.topics.predictions == "driftline.predictions"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (GOOD.replace("numeric", "number"), "models.eta.features.distance_km: Input should be"),
        (GOOD.replace("task: regression", "task: ranking"), "models.eta.task: Input should be"),
        (GOOD.replace("task: regression\n", ""), "models.eta.task: required key is missing"),
        (GOOD + "  extra_key: 1\n", "models.extra_key"),
        (GOOD.replace("bootstrap_servers", "bootstrap"), "kafka.bootstrap: unknown key"),
        ("models: [1, 2]", "models: Input should be a valid dictionary"),
        ("", "expected a mapping at the top level, got nothing (empty file)"),
        ("models: {a: {task: binary, features: {}}}", "models.a.features: Value error"),
    ],
)
def test_bad_config_names_file_key_and_expectation(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_invalid_yaml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("models: {eta: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_detector_override_must_name_a_declared_feature() -> None:
    raw = {
        "models": {
            "eta": {
                "task": "regression",
                "features": {"a": "numeric"},
                "detectors": {"b": {"detector": "cusum"}},
            }
        }
    }
    with pytest.raises(ConfigError, match=r"models.eta.detectors.b: not a declared feature"):
        config_from_dict(raw, source="c.yaml")


def test_secret_comes_from_environment_and_never_shows() -> None:
    raw = {
        "kafka": {
            "sasl_mechanism": "PLAIN",
            "sasl_username": "svc",
            "sasl_password_env": "DL_TEST_PW",
        },
        "models": {"eta": {"task": "binary", "features": {"a": "numeric"}}},
    }
    with pytest.raises(ConfigError, match="DL_TEST_PW is not set"):
        config_from_dict(raw, source="c.yaml", env={})
    config = config_from_dict(raw, source="c.yaml", env={"DL_TEST_PW": "hunter2-secret"})
    assert config.kafka.sasl_password is not None
    assert config.kafka.sasl_password.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(config) and "hunter2-secret" not in str(config)
    assert "hunter2-secret" not in config.model_dump_json()


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SASL_SSL", "SCRAM-SHA-512"),
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SSL", None),
        ("PLAINTEXT", None),
    ],
)
def test_the_workers_faust_app_gets_the_same_kafka_security_as_every_client(
    protocol: str, mechanism: str | None
) -> None:
    """The worker's consumers and producers (Faust, through aiokafka) connect as the SDK, the
    CLI and the delivery loop do: same protocol, mechanism, user and password."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from driftline.monitoring.pipeline import Pipeline
    from driftline.observability.metrics import WorkerMetrics
    from driftline.runtime.app import create_app
    from driftline.runtime.topics import aiokafka_options, faust_credentials

    kafka: dict = {"security_protocol": protocol}
    if mechanism:
        kafka.update(sasl_mechanism=mechanism, sasl_username="svc", sasl_password_env="DL_PW")
    raw = {"kafka": kafka, "models": {"eta": {"task": "binary", "features": {"a": "numeric"}}}}
    config = config_from_dict(raw, source="c.yaml", env={"DL_PW": "hunter2-secret"})
    app = create_app(config, Pipeline.from_config(config), WorkerMetrics(config))
    assert type(app.conf.broker_credentials) is type(faust_credentials(config.kafka))
    faust_auth = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    expected = aiokafka_options(config.kafka)
    assert faust_auth["security_protocol"] == expected["security_protocol"] == protocol
    for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        assert faust_auth.get(key) == expected.get(key)
    assert (faust_auth.get("ssl_context") is not None) == protocol.endswith("SSL")
    assert "hunter2-secret" not in repr(app.conf.broker_credentials)


@pytest.mark.parametrize(
    ("section", "key", "use"),
    [
        ({"kafka": {"sasl_password": "hunter2"}}, "kafka.sasl_password", "sasl_password_env"),
        (
            {
                "notifications": {
                    "receivers": {
                        "s": {"type": "slack", "url_env": "S", "url": "https://h/hunter2"}
                    }
                }
            },
            "notifications.receivers.s.url",
            "notifications.receivers.s.url_env",
        ),
    ],
)
def test_a_secret_written_in_the_file_is_refused_naming_the_env_key(
    section: dict, key: str, use: str
) -> None:
    raw = {"models": {"eta": {"task": "regression", "features": {"x": "numeric"}}}, **section}
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw, source="c.yaml", env={"S": "https://h/ok"})
    message = str(err.value)
    assert message.startswith(f"c.yaml: {key}: ") and use in message
    assert "hunter2" not in message and "\n" not in message


def test_commands_that_do_not_deliver_do_not_need_receiver_urls() -> None:
    raw = {
        "models": {"eta": {"task": "regression", "features": {"x": "numeric"}}},
        "notifications": {
            "receivers": {"s": {"type": "slack", "url_env": "NOT_SET"}},
            "routes": [{"receivers": ["s"]}],
        },
    }
    with pytest.raises(ConfigError, match="NOT_SET is not set"):
        config_from_dict(raw, env={})
    config = config_from_dict(raw, env={}, delivers=False)
    assert config.notifications.receivers["s"].url is None
    broken = {**raw, "notifications": {**raw["notifications"], "routes": [{"receivers": ["x"]}]}}
    with pytest.raises(ConfigError, match="'x' is not defined"):  # still checked
        config_from_dict(broken, env={}, delivers=False)


def test_metrics_listen_on_loopback_and_each_worker_gets_its_own_instance_id(
    tmp_path: Path,
) -> None:
    raw = {"models": {"eta": {"task": "regression", "features": {"x": "numeric"}}}}
    a = config_from_dict({**raw, "worker": {"data_dir": str(tmp_path / "a")}})
    b = config_from_dict({**raw, "worker": {"data_dir": str(tmp_path / "b")}})
    off = config_from_dict({**raw, "worker": {"instance_id": ""}})
    assert a.worker.metrics_host == "127.0.0.1"
    assert a.worker.group_instance_id() != b.worker.group_instance_id()
    assert str(tmp_path / "a") in str(a.worker.group_instance_id())
    assert off.worker.group_instance_id() is None
