"""The tasks `trainguard train` can build from a configuration: the built-in digits, a CSV table,
or the user's own code through a `module:function` factory."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from trainguard.pipeline.settings import ConfigError
from trainguard.pipeline.task_config import ModelSection, OptimizerSection, TaskSection, TrainConfig


@dataclass
class Task:
    """Everything fit() needs besides its FitConfig."""

    model: nn.Module
    loss_fn: Callable[[Any, Any], torch.Tensor]
    optimizer: torch.optim.Optimizer
    train_data: Dataset
    val_data: Dataset | None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None


def build_task(config: TrainConfig, total_steps: Callable[[int], int]) -> Task:
    """Build the configured task. `total_steps(train_samples)` sizes the learning-rate schedule.

    Call it after seeding: the model's initial weights come from the global torch RNG.
    """
    if config.task.kind == "factory":
        return _from_factory(config.task.factory, config.base)  # type: ignore[arg-type]
    if config.task.kind == "digits":
        from trainguard.demo.digits import make_digits

        train_data, val_data = make_digits(config.task.samples, config.task.data_seed), make_digits(config.task.val_samples, config.task.data_seed + 1)
        inputs, outputs, loss_fn = 64, 10, nn.CrossEntropyLoss()
    else:
        train_data, val_data, outputs = _read_tables(config.task, config.base)
        inputs = train_data.tensors[0].shape[1]
        loss_fn = nn.CrossEntropyLoss() if config.task.problem == "classification" else nn.MSELoss()
    model = mlp(inputs, outputs, config.model)
    optimizer = _optimizer(model, config.optimizer)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps(len(train_data)))
                 if config.optimizer.schedule == "cosine" else None)
    return Task(model, loss_fn, optimizer, train_data, val_data, scheduler)


def mlp(inputs: int, outputs: int, section: ModelSection) -> nn.Module:
    """Linear -> ReLU -> Dropout per hidden width, then a linear head."""
    layers: list[nn.Module] = []
    width = inputs
    for hidden in section.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(section.dropout)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, outputs))


def _optimizer(model: nn.Module, section: OptimizerSection) -> torch.optim.Optimizer:
    if section.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=section.lr, momentum=section.momentum, weight_decay=section.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=section.lr, weight_decay=section.weight_decay)


# -- CSV tables -------------------------------------------------------------------------------------
def _read_tables(task: TaskSection, base: Path) -> tuple[TensorDataset, TensorDataset | None, int]:
    train_rows = _read_csv(base / task.train, task)  # type: ignore[operator]
    val_rows = _read_csv(base / task.val, task) if task.val else None
    classes: list[str] = []
    if task.problem == "classification":
        classes = sorted({target for _, target in train_rows})
        unseen = sorted({target for _, target in val_rows or []} - set(classes))
        if unseen:
            raise ConfigError(f"{task.val} has target values absent from {task.train}: {', '.join(unseen[:5])}")
    class_index = {name: index for index, name in enumerate(classes)}
    train_features = torch.tensor([features for features, _ in train_rows])
    # Standardise with the training statistics (constant columns are left centred, not divided by 0).
    mean, std = train_features.mean(0), train_features.std(0, unbiased=False).clamp_min(1e-12)

    def dataset(rows: list[tuple[list[float], str]], source: str) -> TensorDataset:
        features = (torch.tensor([f for f, _ in rows]) - mean) / std
        if task.problem == "classification":
            targets = torch.tensor([class_index[t] for _, t in rows])
        else:
            targets = torch.tensor([[_number(t, source, task.target, row) for row, (_, t) in enumerate(rows, 2)]]).T  # type: ignore[arg-type]
        return TensorDataset(features, targets)

    outputs = len(classes) if task.problem == "classification" else 1
    return dataset(train_rows, task.train), dataset(val_rows, task.val) if val_rows else None, outputs  # type: ignore[arg-type]


def _read_csv(path: Path, task: TaskSection) -> list[tuple[list[float], str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            for column in [*task.features, task.target]:  # type: ignore[misc]
                if column not in columns:
                    raise ConfigError(f"{path} has no column {column!r} (its columns: {', '.join(columns) or 'none'})")
            rows = [([_number(record[c], path, c, line) for c in task.features], record[task.target])  # type: ignore[union-attr, index]
                    for line, record in enumerate(reader, 2)]
    except FileNotFoundError:
        raise ConfigError(f"data file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"data file {path} cannot be read ({error})") from None
    if not rows:
        raise ConfigError(f"data file {path} has no rows")
    return rows


def _number(text: str | None, path: Path | str, column: str, line: int) -> float:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{path}:{line}: column {column!r} holds {text!r}, not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{path}:{line}: column {column!r} holds {text!r}, not a finite number")
    return value


# -- user code --------------------------------------------------------------------------------------
def _from_factory(target: str, base: Path) -> Task:
    parts = _call_factory(target, base)
    missing = [key for key in ("model", "loss_fn", "optimizer", "train_data") if key not in parts]
    if missing:
        raise ConfigError(f"the factory {target} returned no {', '.join(missing)} (it must return a dict with model, "
                          "loss_fn, optimizer (parameters -> optimizer), train_data and optionally val_data, scheduler)")
    if not isinstance(parts["model"], nn.Module) or not callable(parts["optimizer"]):
        raise ConfigError(f"the factory {target} must return model as an nn.Module and optimizer as a function of the parameters")
    if isinstance(parts["train_data"], DataLoader):
        raise ConfigError(f"the factory {target} must return train_data as a Dataset, not a DataLoader: trainguard train "
                          "builds the loader itself so that the data order is a pure function of (seed, epoch)")
    optimizer = parts["optimizer"](parts["model"].parameters())
    scheduler = parts["scheduler"](optimizer) if parts.get("scheduler") is not None else None
    return Task(parts["model"], parts["loss_fn"], optimizer, parts["train_data"], parts.get("val_data"), scheduler)


def _call_factory(target: str, base: Path) -> dict[str, Any]:
    where, _, name = target.rpartition(":")
    if not where or not name:
        raise ConfigError(f"task.factory must be 'module:function' or 'path/to/file.py:function' (got {target!r})")
    try:
        if where.endswith(".py"):
            path = (base / where).resolve()
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise ConfigError(f"the factory file {path} does not exist")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            sys.path[:0] = [str(base), str(Path.cwd())]  # as `python -m` would find the user's modules
            module = importlib.import_module(where)
    except ImportError as error:
        raise ConfigError(f"cannot import the factory module {where!r} ({error})") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ConfigError(f"{where} has no function {name!r}")
    parts = factory()
    if not isinstance(parts, dict):
        raise ConfigError(f"the factory {target} must return a dict (it returned {type(parts).__name__})")
    return parts
