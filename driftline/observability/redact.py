"""Secrets out of every log line, whoever writes it.

The config keeps secrets as ``SecretStr`` so driftline's own code cannot print them, but the
libraries under it log what they send: at debug level kafka-python logs the SASL PLAIN
request, password included. So every log record is checked as it is made, and the known
secret values (and their escaped forms, as a ``bytes`` repr shows them) are replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

MASK = "***"


def redact_secrets_in_logs(secrets: Iterable[str]) -> None:
    """From now on, log records of this process show ``***`` where a secret was."""
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) < 4:  # too short to search for without masking ordinary words
            continue
        forms.add(secret)
        forms.add(repr(secret.encode())[2:-1])  # b'...' escapes: how bytes are logged
    if not forms:
        return
    ordered = sorted(forms, key=len, reverse=True)  # a longer form before its substrings
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it when it formats
            return record
        if any(form in message for form in ordered):
            for form in ordered:
                message = message.replace(form, MASK)
            record.msg, record.args = message, None
        return record

    logging.setLogRecordFactory(redacting_factory)
