"""Error hierarchy for harborwatch.

Every error a user can cause or meet (bad input, missing credentials, a source that says no)
is a ``HarborwatchError``; each class also inherits the builtin it resembles, so callers can
catch either. The CLI turns these into a one-line message and exit code 2 (bad input) or 1
(the work failed); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HarborwatchError(Exception):
    """Base class for errors harborwatch reports to users in one line."""

    #: CLI exit code: 2 = bad usage or bad input, 1 = the work failed.
    exit_code: int = 1


class InputError(HarborwatchError, ValueError):
    """The user's input is wrong (argument, file, AOI); exit code 2."""

    exit_code = 2


class AoiError(InputError, KeyError):
    """Unknown AOI name, empty or invalid AOI geometry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class MissingBandsError(InputError):
    """A raster lacks bands that the requested operation needs."""

    def __init__(self, missing: list[str] | tuple[str, ...], context: str = "") -> None:
        self.missing = tuple(missing)
        where = f" in {context}" if context else ""
        super().__init__(f"missing band(s) {', '.join(self.missing)}{where}")


class CrsError(InputError):
    """A raster or geometry has no CRS or one we cannot work in."""


class RasterReadError(HarborwatchError, OSError):
    """A raster could not be opened or read (corrupt, truncated, not a raster)."""


class CatalogError(HarborwatchError, RuntimeError):
    """A catalogue (STAC API, Sentinel Hub) answered with an error we cannot retry."""


class CredentialsError(InputError, PermissionError):
    """Credentials are missing or were rejected."""


class RateLimitError(CatalogError):
    """The source kept answering 429 after all retries."""


class CoverageError(InputError):
    """The AOI or period lies outside what a collection covers."""


class ModelError(HarborwatchError, RuntimeError):
    """Model weights are missing, corrupt or do not match the input."""
