"""The folders a command writes to, checked before anything runs: one that cannot be written is named with the
reason, and nothing is created."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from dlkit.errors import ConfigError


def check_writable(folder: str, key: str = "paths.output_dir") -> None:
    """A ConfigError unless `folder` can be made and written: the nearest folder of it that exists takes a new
    folder (made and removed again), as the run's own would be. Nothing is left behind."""
    path = Path(folder).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    fix = f"choose one you can write: {key}=<folder>"
    if not existing.is_dir():
        raise ConfigError(f"{key}={folder} cannot be made: {existing} is a file, not a folder; {fix}.")
    refused = write_refused(existing)
    if refused is not None:  # ENOENT in a folder that exists: a virtual file system (/proc)
        reason = "it takes no new folders" if refused.errno == errno.ENOENT else refused.strerror
        raise ConfigError(f"{key}={folder} cannot be written: {existing}: {reason}; {fix}.")


def write_refused(folder: Path) -> OSError | None:
    """Why a new folder cannot be made (and removed again) in `folder`, which exists; None when it can. Nothing is
    left behind."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".dlkit-write-check-", dir=folder))
    except OSError as exc:
        return exc
    return None
