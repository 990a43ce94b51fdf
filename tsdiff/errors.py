"""Exception types raised by tsdiff.

Every error raised on bad user input is one of these, so callers can catch
``TsdiffError`` broadly or the specific subclass. Each also derives from the
closest built-in exception (``ValueError``, ``KeyError``, ``FileNotFoundError``)
so generic handlers keep working.
"""

from __future__ import annotations


class TsdiffError(Exception):
    """Base class of every error tsdiff raises on purpose."""


class ConfigError(TsdiffError, ValueError):
    """A configuration value or key is invalid (unknown key, out-of-range value)."""


class UnknownNameError(TsdiffError, KeyError):
    """A registry lookup used a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class DataError(TsdiffError, ValueError):
    """Input data is malformed (inf values, wrong shape, wrong dtype, ...)."""


class DatasetNotFoundError(TsdiffError, FileNotFoundError):
    """Files of a dataset are missing and could not be downloaded."""
