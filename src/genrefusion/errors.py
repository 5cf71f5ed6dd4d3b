"""The one error family of genrefusion.

Every message names the file or parameter at fault and the reason, in one line a person
understands. The CLI turns these into a one-line message and a non-zero exit code.
"""

from __future__ import annotations

import errno
from pathlib import Path


class GenreFusionError(Exception):
    """Base class of every error genrefusion raises on purpose."""

    exit_code = 1

    def __init__(self, reason: str, *, path: str | Path | None = None):
        self.reason = reason
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class AudioError(GenreFusionError):
    """An audio file cannot be used: missing, empty, corrupt, silent, too short."""


class DatasetError(GenreFusionError):
    """A dataset folder, manifest or table is malformed or inconsistent."""


class SplitLeakError(GenreFusionError):
    """A split puts a track, an artist or a window on two sides."""


class FeatureError(GenreFusionError):
    """An unknown feature, bad feature parameters, or a feature store problem."""


class ConfigError(GenreFusionError):
    """A configuration value or option is invalid."""


class UsageError(ConfigError):
    """A command-line option has a value the command does not take (exit code 2, as for a wrong command line)."""

    exit_code = 2


class ModelError(GenreFusionError):
    """An unknown or misconfigured branch, fusion strategy or model bundle."""


def disk_full(err: BaseException) -> bool:
    """True for an out-of-space error from the file system (ENOSPC, EDQUOT) or from SQLite."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return "database or disk is full" in str(err)
