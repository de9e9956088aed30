"""Each patch names the library versions it was verified with; any other fails at start-up."""

from __future__ import annotations

import importlib.metadata

from driftline.runtime.patches.exceptions import UnverifiedLibraryVersion


def require(distribution: str, verified: tuple[str, ...], patch: str) -> None:
    """Raise unless the installed ``distribution`` starts with one of ``verified``."""
    version = importlib.metadata.version(distribution)
    if not version.startswith(verified):
        raise UnverifiedLibraryVersion(
            f"{distribution} {version}: driftline's patch {patch} was verified with "
            f"{', '.join(v + 'x' for v in verified)} only; check it against this version "
            "(docs/runtime-patches.md) before widening its guard"
        )
