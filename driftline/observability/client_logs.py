"""The Kafka clients' and Faust's log records reworded or demoted where they mislead.

- Faust's "producer buffer full size N" (and its "producer flush took ..." after each) is
  backpressure under load, written with the size in the text: one template, so that the
  repeat throttle can collapse it to a line per period.
- A fresh broker creates its offsets topic when the first consumer group asks for a
  coordinator, and aiokafka logs the retries as errors: during the start-up grace they are
  information; a coordinator still missing after it is an error again.
- On a stop (or a rebalance) Faust waits for the messages it has fetched to be processed and,
  every ten tries, logs each pending message and the traceback of every agent: one line with
  their number says what is going on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

STARTUP_GRACE_SECONDS = 60.0
_COORDINATOR_RETRIES = ("Group Coordinator Request failed", "Marking the coordinator dead")


class ClientLogHygiene(logging.Filter):
    def __init__(
        self,
        grace: float = STARTUP_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.grace_ends = clock() + grace

    def filter(self, record: logging.LogRecord) -> bool:
        passed = getattr(record, "_tidied", None)  # the same record at the next handler
        if passed is None:
            passed = record._tidied = self._tidy(record)
        return bool(passed)

    def _tidy(self, record: logging.LogRecord) -> bool:
        """Reword or demote ``record`` in place; False drops it."""
        message = record.msg if isinstance(record.msg, str) else ""
        if record.name == "faust.transport.producer":
            if message.startswith("producer buffer full size "):
                record.msg = "producer buffer full (%s messages waiting): processing waits"
                record.args = (message.removeprefix("producer buffer full size "),)
            return not message.startswith("producer flush took")
        if record.name.startswith("aiokafka") and message.startswith(_COORDINATOR_RETRIES):
            retried = message.startswith("Marking") or _retriable(record)
            if retried and self.clock() < self.grace_ends:
                record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        if "wait_empty: Waiting for tasks" in message:
            pending = record.args[0] if isinstance(record.args, tuple) and record.args else ()
            record.msg = message.replace(
                "wait_empty: Waiting for tasks %r",
                "waiting for %d fetched messages to be processed",
            )
            record.args = (len(pending) if isinstance(pending, list | tuple | set) else 0,)
            return True
        return "Agent tracebacks:" not in message


def _retriable(record: logging.LogRecord) -> bool:
    """A coordinator that is not there yet (or moved): aiokafka looks it up again."""
    error = record.args[0] if isinstance(record.args, tuple) and record.args else None
    return isinstance(error, BaseException) and bool(getattr(error, "retriable", False))
