"""One error root for buildwatch.

Every error the project raises on purpose derives from :class:`BuildwatchError`. Each subclass
also inherits the builtin it resembles (an unreadable file is an ``OSError``, a bad value a
``ValueError``), so callers can catch either. Messages name the file, layer, column or value that
was wrong and say how to fix it; the CLI prints ``str(err)`` as one line and exits with
``err.exit_code``.

>>> err = InputFileError("flight.tif: not a raster (GDAL could not open it); pass a GeoTIFF")
>>> isinstance(err, OSError), err.exit_code
(True, 3)
"""

from __future__ import annotations

__all__ = [
    "BuildwatchError",
    "ConfigError",
    "InputFileError",
    "RasterError",
    "VectorError",
    "CRSError",
    "CoverageError",
    "CoregistrationError",
    "ModelError",
    "LedgerError",
    "TransitionError",
    "LockError",
]


class BuildwatchError(Exception):
    """Root of every error buildwatch raises on purpose."""

    #: process exit code the CLI uses for this kind of error (documented in README)
    exit_code = 1


class ConfigError(BuildwatchError, ValueError):
    """A configuration file or command-line option is invalid."""

    exit_code = 2


class InputFileError(BuildwatchError, OSError):
    """An input file is missing, unreadable, corrupt, or not what was expected."""

    exit_code = 3


class RasterError(InputFileError):
    """A raster cannot be used (no CRS, too few bands, empty, all transparent...)."""


class VectorError(BuildwatchError, ValueError):
    """A vector layer is missing, lacks a required column, or has unusable geometry."""

    exit_code = 3


class CRSError(BuildwatchError, ValueError):
    """A coordinate reference system is missing or unsuitable."""

    exit_code = 3


class CoverageError(BuildwatchError, ValueError):
    """Flight and baseline do not overlap (or overlap too little to compare)."""

    exit_code = 3


class CoregistrationError(BuildwatchError, RuntimeError):
    """Baseline and flight cannot be co-registered well enough to compare them."""

    exit_code = 4


class ModelError(BuildwatchError, RuntimeError):
    """Model weights are missing, unreadable, or do not match the expected input."""

    exit_code = 5


class LedgerError(BuildwatchError, RuntimeError):
    """The case ledger cannot be read or written."""

    exit_code = 6


class TransitionError(LedgerError, ValueError):
    """A case state change that the notice's ledgers do not allow."""

    exit_code = 6


class LockError(BuildwatchError, RuntimeError):
    """Another buildwatch process holds the lock (ledger writer or nightly run)."""

    exit_code = 75  # EX_TEMPFAIL: try again later
