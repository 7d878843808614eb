"""The set-up the doctor probes: a model, its loss, an optimizer factory and the data.

A TARGET names a function (`module:function` or `path/to/file.py:function`) that returns the
set-up, either as a dict with the contract's keys or as a `Setup`. Everything that can go wrong
while finding, importing, calling or checking that function is a `TargetError` with one sentence
for the user (the command turns it into exit status 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class TargetError(ValueError):
    """The TARGET cannot be used; the message is one sentence saying why and what to do."""


@dataclass
class Setup:
    """What `trainguard doctor` probes.

    model: the `nn.Module` to train.
    loss_fn: called as `loss_fn(model(inputs), targets)`.
    optimizer: a callable taking the model's parameters and returning an optimizer, e.g.
        `lambda params: torch.optim.SGD(params, lr=0.1)`; the doctor builds fresh optimizers for
        fresh copies of the model, so it needs the recipe, not an optimizer already built.
    train_data / val_data: a `Dataset` or a `DataLoader` whose samples (or batches) are
        `(inputs, targets)` pairs; inputs is a tensor or a tuple of tensors (`model(*inputs)`).
    """

    model: nn.Module
    loss_fn: Callable[..., torch.Tensor]
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    train_data: Dataset | DataLoader
    val_data: Dataset | DataLoader | None = None


_KEYS = tuple(field.name for field in fields(Setup))
_REQUIRED = tuple(key for key in _KEYS if key != "val_data")
# Keys of the same factory that only `trainguard train` uses: one function serves both commands.
_TRAIN_ONLY = ("scheduler", "metrics")


@dataclass(frozen=True)
class LoadedTarget:
    """A checked set-up and where it came from (the function's file and line, for findings)."""

    spec: str
    setup: Setup
    path: str | None
    line: int | None


def _import_file(path: Path) -> Any:
    # Like `python path/to/file.py`: the file's folder is importable, so its sibling modules are.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"trainguard_doctor_target_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def _import_module(name: str) -> Any:
    # Like `python -m`: the current folder is importable.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    return importlib.import_module(name)


def describe_error(error: BaseException) -> str:
    """`Type: first line of the message`, the way the doctor quotes the user's exceptions."""
    text = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _find_function(spec: str) -> Callable[[], Any]:
    where, _, name = spec.rpartition(":")
    if not where or not name:
        if spec.endswith(".toml"):
            raise TargetError(
                f"{spec} is a config file: `trainguard doctor` does not read `trainguard train` configs yet; "
                "give module:function or path/to/file.py:function"
            )
        raise TargetError(f"TARGET {spec!r} must be module:function or path/to/file.py:function")
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    try:
        if is_file:
            if not Path(where).is_file():
                raise TargetError(f"no such file: {where}")
            module = _import_file(Path(where))
        else:
            module = _import_module(where)
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
        raise TargetError(f"{where}:{name} is a {type(function).__name__}, not a function returning the set-up")
    return function


def _as_setup(spec: str, value: Any) -> Setup:
    if isinstance(value, Setup):
        values = {key: getattr(value, key) for key in _KEYS}
    elif isinstance(value, dict):
        unknown = sorted(set(value) - set(_KEYS) - set(_TRAIN_ONLY))
        missing = [key for key in _REQUIRED if key not in value]
        if missing:
            raise TargetError(f"{spec} returned a dict without {', '.join(map(repr, missing))}: it needs the keys {', '.join(_REQUIRED)} (val_data optional)")
        if unknown:
            raise TargetError(f"{spec} returned unknown key(s) {', '.join(map(repr, unknown))}: the keys are {', '.join(_KEYS)} "
                              f"(and {' and '.join(_TRAIN_ONLY)}, which trainguard train uses)")
        values = {key: value.get(key) for key in _KEYS}
    else:
        raise TargetError(
            f"{spec} returned a {type(value).__name__}: it must return a dict with the keys "
            f"{', '.join(_REQUIRED)} (val_data optional), or a trainguard.doctor.Setup"
        )
    _check_values(spec, values)
    return Setup(**values)


def _check_values(spec: str, values: dict[str, Any]) -> None:
    if not isinstance(values["model"], nn.Module):
        raise TargetError(f"{spec}: 'model' is a {type(values['model']).__name__}, not a torch.nn.Module")
    if not callable(values["loss_fn"]):
        raise TargetError(f"{spec}: 'loss_fn' is a {type(values['loss_fn']).__name__}, not callable")
    if isinstance(values["optimizer"], torch.optim.Optimizer) or not callable(values["optimizer"]):
        raise TargetError(
            f"{spec}: 'optimizer' must be a callable taking the parameters (e.g. "
            f"`lambda params: torch.optim.SGD(params, lr=0.1)`), not a {type(values['optimizer']).__name__}"
        )
    for key in ("train_data", "val_data"):
        data = values[key]
        if data is None and key == "val_data":
            continue
        if not isinstance(data, (Dataset, DataLoader)):
            raise TargetError(f"{spec}: {key!r} is a {type(data).__name__}, not a torch Dataset or DataLoader")
        _check_sample(spec, key, data)


def _check_sample(spec: str, key: str, data: Dataset | DataLoader) -> None:
    """The first sample (or batch) must be an (inputs, targets) pair: every probe relies on it."""
    try:
        sample = next(iter(data)) if isinstance(data, DataLoader) else data[0]
    except (StopIteration, IndexError):
        raise TargetError(f"{spec}: {key!r} is empty") from None
    except Exception as error:
        raise TargetError(f"{spec}: reading the first sample of {key!r} raised {describe_error(error)}") from None
    if not isinstance(sample, (tuple, list)) or len(sample) != 2:
        raise TargetError(
            f"{spec}: the samples of {key!r} must be (inputs, targets) pairs; the first one is a "
            f"{type(sample).__name__}" + (f" of {len(sample)} items" if isinstance(sample, (tuple, list)) else "")
        )


def _place(function: Callable[..., Any]) -> tuple[str | None, int | None]:
    try:
        path = inspect.getsourcefile(function)
        line = inspect.getsourcelines(function)[1]
    except (TypeError, OSError):
        return None, None
    return display_path(path), line


def display_path(path: str | None) -> str | None:
    """`path` relative to the current folder when it lies below it (as findings show paths)."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def load_target(spec: str) -> LoadedTarget:
    """Import the TARGET's function, call it and check what it returns."""
    function = _find_function(spec)
    try:
        value = function()
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        raise TargetError(f"{spec} raised {describe_error(error)}") from None
    setup = _as_setup(spec, value)
    path, line = _place(function)
    return LoadedTarget(spec, setup, path, line)
