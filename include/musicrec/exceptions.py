"""The few project exceptions. Each maps to a job exit code (see constants)."""

from __future__ import annotations


class MusicrecError(Exception):
    """Base class of the project's own errors."""


class ConfigError(MusicrecError, ValueError):
    """A parameter or combination of parameters is invalid; retrying cannot help."""


class MissingInputError(MusicrecError):
    """Expected landing data is absent and the missing-input policy says fail."""


class DataRejectedError(MusicrecError):
    """Validation or the quality gate rejected the data; retrying cannot help."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class InsufficientHistoryError(DataRejectedError):
    """The training window holds no usable interactions yet (e.g. the first day of a backfill):
    retrying the same date cannot help."""
