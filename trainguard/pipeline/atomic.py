"""Atomic file replacement: a reader (or a resumed run) sees the old file or the new one, never a
half-written one, even if the process is killed mid-write."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Temporary files are hidden and carry this suffix so that a later run can recognise and sweep
# the leftovers of a writer that was killed.
TEMP_PREFIX = ".trainguard-"
TEMP_SUFFIX = ".tmp"


def _fsync_folder(folder: Path) -> None:
    # The rename lives in the folder's entry table: without this fsync a power cut can undo it.
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory handles (Windows): nothing more to do
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _new_file_mode() -> int:
    """The mode `open()` gives a new file: 0666 less the process's umask (read by setting it back)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in `target`'s folder; when the block succeeds, the file written there
    is flushed to disk and renamed over `target` (and the folder is flushed); when it fails or the
    process dies, `target` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=TEMP_PREFIX + target.name + ".", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, _new_file_mode())  # mkstemp's 0600 is for the temporary, not the result
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def write_text_atomic(target: str | Path, text: str) -> None:
    """Replace `target` with `text` (UTF-8) atomically."""
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


def sweep_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed writers left in `folder`; return what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [path for path in folder.iterdir() if path.name.startswith(TEMP_PREFIX) and path.name.endswith(TEMP_SUFFIX)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
