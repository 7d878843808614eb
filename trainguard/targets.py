"""`module:function` and `path/to/file.py:function`: how `trainguard doctor` (TARGET) and
`trainguard train` (`task.factory`) find and call the user's function. Everything that can go
wrong while importing or calling it is a `TargetError` with one sentence for the user."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable


class TargetError(ValueError):
    """The target cannot be used; the message is one sentence saying why and what to do."""


def describe_error(error: BaseException) -> str:
    """`Type: first line of the message`, the way trainguard quotes the user's exceptions."""
    text = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def find_function(spec: str, *, label: str, base: Path | None = None) -> Callable[..., Any]:
    """Import the function `spec` names. A relative file path, and a module, are looked up from
    `base` (default: the working directory); `label` names the setting in the format error."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise TargetError(f"{label} {spec!r} must be module:function or path/to/file.py:function")
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    try:
        if is_file:
            path = Path(where) if base is None else base / where
            if not path.is_file():
                raise TargetError(f"no such file: {path}")
            module = _import_file(path)
        else:
            module = _import_module(where, base)
    except TargetError:
        raise
    except ModuleNotFoundError as error:
        if error.name and (where == error.name or where.startswith(error.name + ".")) and not is_file:
            raise TargetError(f"no module named {where!r} (run from the folder that contains it, or give path/to/file.py:function)") from None
        raise TargetError(f"cannot import {where}: {describe_error(error)}") from None
    except BaseException as error:  # the user's module may fail in any way, even sys.exit()
        if isinstance(error, KeyboardInterrupt):
            raise
        raise TargetError(f"cannot import {where}: {describe_error(error)}") from None
    function = getattr(module, name, None)
    if function is None:
        raise TargetError(f"{where} has no function {name!r}")
    if not callable(function):
        raise TargetError(f"{where}:{name} is a {type(function).__name__}, not a function")
    return function


def call_function(spec: str, function: Callable[[], Any]) -> Any:
    """`function()`, with any exception of the user's turned into a TargetError."""
    try:
        return function()
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        raise TargetError(f"{spec} raised {describe_error(error)}") from None


def _import_file(path: Path) -> Any:
    # Like `python path/to/file.py`: the file's folder is importable, so its sibling modules are.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"trainguard_target_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def _import_module(name: str, base: Path | None) -> Any:
    # Like `python -m`: the working directory is importable, and `base` before it.
    cwd = str(Path.cwd())
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    if base is not None and str(base.resolve()) not in sys.path:
        sys.path.insert(0, str(base.resolve()))
    return importlib.import_module(name)
