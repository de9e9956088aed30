"""Errors of the runtime patches."""


class UnverifiedLibraryVersion(RuntimeError):
    """A library version a patch was not verified with."""
