"""Secrets are masked in log records whoever logs them (driftline/observability/redact.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from driftline.config import config_from_dict
from driftline.observability.redact import redact_secrets_in_logs


@pytest.fixture
def restore_factory() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)


def test_config_secrets_are_masked_in_any_logger(
    restore_factory: None, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_from_dict(
        {
            "kafka": {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "svc",
                "sasl_password_env": "PW",
            },
            "notifications": {"receivers": {"oncall": {"type": "slack", "url_env": "HOOK"}}},
            "models": {},
        },
        env={"PW": "p'w\\s3cret", "HOOK": "https://hooks.slack.com/services/T/B/t0ken"},
    )
    assert sorted(config.secrets()) == ["https://hooks.slack.com/services/T/B/t0ken", "p'w\\s3cret"]
    redact_secrets_in_logs(config.secrets())
    library = logging.getLogger("some.library")  # a library's logger, not driftline's
    with caplog.at_level(logging.DEBUG, logger="some.library"):
        library.debug("Request: %r", b"\x00svc\x00" + b"p'w\\s3cret")  # escaped in repr
        library.warning("posting to %s failed", "https://hooks.slack.com/services/T/B/t0ken")
        library.info("plain %s", "p'w\\s3cret")
    text = caplog.text
    assert "s3cret" not in text and "t0ken" not in text
    assert text.count("***") == 3 and "svc" in text  # masked, the rest of each line kept
