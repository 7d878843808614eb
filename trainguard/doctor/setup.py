"""The set-up the doctor probes: a model, its loss, an optimizer factory and the data.

A TARGET names a function (`module:function` or `path/to/file.py:function`) that returns the
set-up, either as a dict with the contract's keys or as a `Setup`. Everything that can go wrong
while finding, importing, calling or checking that function is a `TargetError` with one sentence
for the user (the command turns it into exit status 2).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainguard.targets import TargetError, call_function, describe_error, find_function


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


def _find_function(spec: str) -> Callable[[], Any]:
    if ":" not in spec and spec.endswith(".toml"):
        raise TargetError(
            f"{spec} is a config file: `trainguard doctor` does not read `trainguard train` configs yet; "
            "give module:function or path/to/file.py:function"
        )
    return find_function(spec, label="TARGET")


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
    setup = _as_setup(spec, call_function(spec, function))
    path, line = _place(function)
    return LoadedTarget(spec, setup, path, line)
