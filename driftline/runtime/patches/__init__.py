"""Fixes to faust-streaming and aiokafka, one module each, installed by ``apply_all``.

Each module's docstring says what breaks, the fix, the test that shows it and the upstream
change that would retire it; its ``apply`` fails at start-up on a library version it was not
verified with (``guard.require``). docs/runtime-patches.md tells how each was found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from driftline.runtime.patches import (
    changelog_ends,
    commit_after_end,
    commit_before_rebalance,
    hand_over,
    leave_on_stop,
    restore_end,
    short_fetch_polls,
    state_positions,
    undecodable_batches,
)

PATCHES = (
    changelog_ends,
    short_fetch_polls,
    state_positions,
    commit_before_rebalance,
    restore_end,
    hand_over,
    undecodable_batches,
    leave_on_stop,
    commit_after_end,
)


def apply_all() -> None:
    """Install every patch (idempotent); the app calls it before Faust builds anything."""
    for patch in PATCHES:
        patch.apply()


def configure(
    applied: Callable[[], Mapping[tuple[str, int], int]],
    input_topics: set[str],
    any_committed: Callable[[str, int, int, int], Awaitable[bool]],
) -> None:
    """What the patches need of the app: the state's applied input positions, the input
    topics, and whether a committed record lies in a range of a changelog partition."""
    state_positions.configure(applied, input_topics)
    restore_end.configure(any_committed)
