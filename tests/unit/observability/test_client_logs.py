"""The client libraries' misleading records: reworded so repeats collapse, demoted while a
fresh broker starts, and the stop's dumps reduced to a count."""

from __future__ import annotations

import inspect
import logging

import pytest
from aiokafka.consumer.group_coordinator import BaseCoordinator, GroupCoordinator
from aiokafka.errors import GroupAuthorizationFailedError, GroupCoordinatorNotAvailableError
from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer

from driftline.observability.client_logs import ClientLogHygiene
from driftline.observability.logthrottle import RepeatThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def capture(name: str, clock: Clock) -> tuple[logging.Logger, list[logging.LogRecord]]:
    """A logger of that name whose two handlers tidy, then throttle, as the worker's do."""
    records: list[logging.LogRecord] = []
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.DEBUG)

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    hygiene, throttle = ClientLogHygiene(grace=60.0, clock=clock), RepeatThrottle(10.0, clock)
    for handler in (Keep(), Keep()):
        handler.addFilter(hygiene)
        handler.addFilter(throttle)
        logger.addHandler(handler)
    return logger, records


def test_the_messages_are_the_libraries_own() -> None:
    """If a library rewords them, these filters no longer match: fail here, not in a log."""
    assert 'f"producer buffer full size {self.size}"' in inspect.getsource(
        ProducerBuffer.wait_until_ebb
    )
    assert '"Group Coordinator Request failed: %s"' in inspect.getsource(
        BaseCoordinator.ensure_coordinator_known
        if hasattr(BaseCoordinator, "ensure_coordinator_known")
        else GroupCoordinator.ensure_coordinator_known
    )
    source = inspect.getsource(Consumer.wait_empty)
    assert '"wait_empty: Waiting for tasks %r"' in source
    assert '"Agent tracebacks:\\n%s"' in source


def test_a_full_producer_buffer_is_one_line_per_period_with_a_count() -> None:
    clock = Clock()
    logger, records = capture("faust.transport.producer", clock)
    for size in range(1001, 1301):
        logger.warning(f"producer buffer full size {size}")
        logger.info(f"producer flush took {size / 1e4}")
        clock.now += 0.01
    clock.now = 12.0
    logger.warning("producer buffer full size 1500")
    assert [r.getMessage() for r in records] == [
        "producer buffer full (1001 messages waiting): processing waits"
    ] * 2 + [
        "producer buffer full (1500 messages waiting): processing waits "
        "[and 299 more like this in the last 12 s]"
    ] * 2


def test_a_coordinator_not_there_yet_is_information_at_start_and_an_error_later() -> None:
    clock = Clock()
    logger, records = capture("aiokafka.consumer.group_coordinator", clock)
    logger.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
    logger.warning("Marking the coordinator dead (node %s)for group %s.", 1, "g")
    logger.error("Group Coordinator Request failed: %s", GroupAuthorizationFailedError())
    clock.now = 61.0
    logger.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
    assert [r.levelname for r in records[::2]] == ["INFO", "INFO", "ERROR", "ERROR"]
    assert "GroupCoordinatorNotAvailableError" in records[0].getMessage()


@pytest.mark.parametrize("pending", [5, 120])
def test_a_stop_that_waits_says_how_many_messages_not_what_each_is(pending: int) -> None:
    clock = Clock()
    logger, records = capture("faust.transport.consumer", clock)
    waiting = [(1, object()) for _ in range(pending)]
    logger.warning("[^--Consumer]: wait_empty: Waiting for tasks %r", waiting)
    logger.info("[^--Consumer]: Agent tracebacks:\n%s", "x" * 10_000)
    assert [r.getMessage() for r in records] == [
        f"[^--Consumer]: waiting for {pending} fetched messages to be processed"
    ] * 2
