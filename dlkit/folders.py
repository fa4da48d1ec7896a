"""The folders a command writes to, checked before anything runs: one that cannot be written is named with the
reason, and nothing is created."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
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


@contextlib.contextmanager
def written_whole(target: Path) -> Iterator[Path]:
    """A file beside `target` to write in the block, renamed to `target` when the block ends and removed if it fails:
    `target` appears whole or not at all. Named for this process, so that parallel jobs writing the same file (a
    download, a cache) never write into one another's."""
    partial = target.with_name(f"{target.stem}.{os.getpid()}.part{target.suffix}")  # the suffix stays: np.savez
    try:
        yield partial
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
