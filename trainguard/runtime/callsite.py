"""Where in the user's code an observed call came from: the first frame outside the libraries."""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from importlib.util import find_spec
from types import FrameType


@dataclass(frozen=True)
class Location:
    path: str | None
    line: int | None


UNKNOWN = Location(None, None)


def _package_dir(name: str) -> str | None:
    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "")


def _library_prefixes() -> tuple[str, ...]:
    # Frames in these packages are never "the user's code": PyTorch itself, trainguard, and the
    # trainers that call a user's model for them (findings should point past them, at user code).
    names = ("torch", "trainguard", "lightning", "pytorch_lightning", "transformers", "accelerate")
    return tuple(prefix for prefix in map(_package_dir, names) if prefix)


_LIBRARIES = _library_prefixes()
_STDLIB = os.path.join(sysconfig.get_paths()["stdlib"], "")
# The environment's console scripts (`bin/trainguard`, `bin/torchrun`): generated entry-point stubs
# that only call into a package, never the user's code; the package's own frames come first.
_SCRIPTS = os.path.join(sysconfig.get_paths()["scripts"], "")
_CWD = os.path.join(os.getcwd(), "")


def display_path(filename: str) -> str:
    """Relative to the working directory when inside it, else absolute."""
    return filename[len(_CWD):] if filename.startswith(_CWD) else filename


def source_path(path: str) -> str:
    """The file a display path names, wherever the process has moved since."""
    return os.path.join(_CWD, path)  # an absolute `path` is kept as it is


# Per file name: None for library code, else its display path. Called several times per step, so
# the path tests run once per file, not once per frame. Not per code object: code objects compare
# equal by content, file name aside, so the same function in two files would share one entry.
_user_paths: dict[str, str | None] = {}
# Per (path, line): its Location, made once (a frozen dataclass costs ~1 us to construct; a
# training loop reports the same few lines every step).
_locations: dict[tuple[str, int], Location] = {}


def user_location(skip: int = 1) -> Location:
    """The innermost frame (from the caller outward) whose file is user code."""
    frame: FrameType | None = sys._getframe(skip)
    while frame is not None:
        filename = frame.f_code.co_filename
        try:
            path = _user_paths[filename]
        except KeyError:
            path = _user_paths[filename] = None if _is_library(filename) else display_path(filename)
        if path is not None:
            key = (path, frame.f_lineno)
            location = _locations.get(key)
            if location is None:
                location = _locations[key] = Location(*key)
            return location
        frame = frame.f_back
    return UNKNOWN


def _is_library(filename: str) -> bool:
    if filename.startswith(_LIBRARIES) or filename.startswith("<frozen") or filename.startswith(_SCRIPTS):
        return True
    # runpy, contextlib, functools...; but not a user's package installed under site-packages.
    return filename.startswith(_STDLIB) and "-packages" not in filename


def is_user_file(filename: str) -> bool:
    """A file of the user's own code: not a library frame, nor any installed package's file."""
    return not _is_library(filename) and "-packages" not in filename
