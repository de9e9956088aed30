"""Every runtime patch refuses, at start-up, a library version it was not verified with."""

from __future__ import annotations

import importlib.metadata

import pytest

from driftline.runtime import patches
from driftline.runtime.patches.exceptions import UnverifiedLibraryVersion


@pytest.mark.parametrize("patch", patches.PATCHES, ids=lambda p: p.__name__.rsplit(".", 1)[1])
def test_a_patch_fails_loudly_on_an_unverified_version(
    patch: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "99.0.0")
    with pytest.raises(UnverifiedLibraryVersion, match=r"99\.0\.0: driftline's patch") as err:
        patch.apply()  # type: ignore[attr-defined]
    assert patch.__name__ in str(err.value)  # type: ignore[attr-defined]


@pytest.mark.parametrize("patch", patches.PATCHES, ids=lambda p: p.__name__.rsplit(".", 1)[1])
def test_a_patch_says_what_breaks_the_fix_its_test_and_upstream_in_ten_lines(
    patch: object,
) -> None:
    doc = patch.__doc__ or ""  # type: ignore[attr-defined]
    lines = doc.strip().splitlines()
    assert len(lines) <= 12  # a title, a blank line and at most ten lines
    for word in ("Breaks:", "Fix:", "Test", "Upstream:"):
        assert word in doc, (patch, word)


def test_the_installed_versions_are_the_verified_ones() -> None:
    patches.apply_all()  # raises if the environment drifted from what the patches know
