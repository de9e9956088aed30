"""Repeated warnings collapse to one per template and period; the rest pass untouched."""

from __future__ import annotations

import logging

from driftline.observability.logthrottle import RepeatThrottle, throttle_repeats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def collect(period: float = 10.0) -> tuple[logging.Logger, list[str], Clock]:
    clock, lines = Clock(), []
    logger = logging.getLogger(f"test.throttle.{id(clock)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger.addHandler(Keep())
    logger.addHandler(Keep())  # a second handler must get the same records, not fewer
    throttle_repeats(logger, RepeatThrottle(period, clock))
    return logger, lines, clock


def test_a_burst_of_one_error_becomes_one_line_then_a_count() -> None:
    logger, lines, clock = collect()
    for i in range(500):
        logger.error("Unable connect to node with id %s: %s", 1, f"refused {i}")
        clock.now += 0.01  # 500 in 5 s
    assert lines == ["Unable connect to node with id 1: refused 0"] * 2
    clock.now = 10.5
    logger.error("Unable connect to node with id %s: %s", 1, "refused again")
    expected = (
        "Unable connect to node with id 1: refused again [and 499 more like this in the last 10 s]"
    )
    assert lines[2:] == [expected] * 2


def test_other_templates_levels_and_info_are_not_held_back() -> None:
    logger, lines, _ = collect()
    for _ in range(3):
        logger.error("fetch failed: %s", "x")
        logger.warning("fetch failed: %s", "x")  # another level: its own count
        logger.error("metadata failed")
        logger.info("Discovered coordinator %s", 1)  # below WARNING: never throttled
    assert lines.count("fetch failed: x") == 4  # one ERROR and one WARNING, at two handlers
    assert lines.count("metadata failed") == 2
    assert lines.count("Discovered coordinator 1") == 6
