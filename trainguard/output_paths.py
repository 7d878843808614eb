"""Output paths given on the command line (`--report`, `--html`, `--metrics`, `--out`...): checked
before any work starts, so that a typo does not cost a whole training run; and written at the end
so that a failure to write is one sentence that keeps the run's summary and exit status."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable


class OutputPathError(ValueError):
    """An output path that cannot be written; the message is one sentence naming the option."""


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_creatable(folder: Path, option: str, shown: str) -> None:
    """`folder` exists as a writable folder, or can be created under one."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputPathError(f"{option} {shown}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {shown}: the folder {existing} is not writable")


def check_output_file(path: str | Path | None, option: str) -> None:
    """Raise OutputPathError unless `path` (a file to be written) can be created or replaced."""
    if path is None:
        return
    target = Path(path).absolute()
    if target.is_dir():
        raise OutputPathError(f"{option} {path}: is a folder; give a file name")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputPathError(f"{option} {path}: the file is not writable")
    _check_creatable(target.parent, option, str(path))


def check_output_folder(path: str | Path | None, option: str) -> None:
    """Raise OutputPathError unless `path` is a writable folder or can be created as one."""
    if path is None:
        return
    target = Path(path).absolute()
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"{option} {path}: is a file, not a folder")
    _check_creatable(target, option, str(path))


def write_output(path: str | Path, write: Callable[[Path], object], verb: str, what: str) -> bool:
    """Create `path`'s folder and call `write(path)`; if that fails, say so on stderr in one
    sentence and return False instead of raising (the caller keeps its summary and exit status)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(target)
    except OSError as error:
        sys.stderr.write(f"trainguard {verb}: could not write {what} to {path} ({error.strerror or error})\n")
        return False
    return True
