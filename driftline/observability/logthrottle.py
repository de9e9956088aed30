"""Repeated warnings collapsed, so that an outage does not bury the log.

While the broker is down, the Kafka clients log the same few errors hundreds of times a
second (a 20 s outage wrote 3,200 lines in
``tests/integration/test_broker_outage_integration.py``). The
throttle lets through the first record of each message template (logger, level, unformatted
message) per period; the rest are counted, and the next record of that template to pass says
how many were left out. Only WARNING and above: debug and info output stays whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Seen:
    since: float  # start of the current period
    dropped: int = 0


class RepeatThrottle(logging.Filter):
    """At most one record per message template and ``period`` seconds (WARNING and above)."""

    def __init__(self, period: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.period = period
        self.clock = clock
        self._seen: dict[tuple[str, int, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        decided = getattr(record, "_throttle_passed", None)
        if decided is not None:  # the same record at the next handler: the same answer
            return bool(decided)
        passed = self._decide(record)
        record._throttle_passed = passed
        return passed

    def _decide(self, record: logging.LogRecord) -> bool:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, record.levelno, template)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) > 10_000:  # templates are few; bound it anyway
                self._seen.clear()
            self._seen[key] = _Seen(now)
            return True
        if now - seen.since < self.period:
            seen.dropped += 1
            return False
        if seen.dropped and isinstance(record.msg, str):
            # No "%" in the note: the message is still formatted with its arguments.
            record.msg += (
                f" [and {seen.dropped} more like this in the last {now - seen.since:.0f} s]"
            )
        seen.since, seen.dropped = now, 0
        return True


def throttle_repeats(logger: logging.Logger, throttle: RepeatThrottle | None = None) -> None:
    """Put a throttle on every handler of ``logger`` (the root logger, once it is set up)."""
    throttle = throttle or RepeatThrottle()
    for handler in logger.handlers:
        handler.addFilter(throttle)
