"""The error a live source raises when its device fails for good (after its retries)."""


class SourceError(RuntimeError):
    """A device that stopped delivering: the message is one line naming it."""
