"""The tasks `trainguard train` can build from a configuration: the built-in digits, a CSV or
Parquet table (tables.py), or the user's own code through a `module:function` factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from trainguard.pipeline.settings import ConfigError
from trainguard.pipeline.tables import read_tables
from trainguard.pipeline.task_config import ModelSection, OptimizerSection, TrainConfig
from trainguard.targets import TargetError, call_function, find_function


@dataclass
class Task:
    """Everything fit() needs besides its FitConfig."""

    model: nn.Module
    loss_fn: Callable[[Any, Any], torch.Tensor]
    optimizer: torch.optim.Optimizer
    train_data: Dataset
    val_data: Dataset | None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    metrics: dict[str, Callable[[Any, Any], torch.Tensor]] = field(default_factory=dict)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The fraction of samples whose highest logit is their label: the classification tasks' metric."""
    return (logits.argmax(dim=-1) == labels).float().mean()


def build_task(config: TrainConfig, total_steps: Callable[[int], int], device: torch.device) -> Task:
    """Build the configured task, its model on `device` before its optimizer is made.
    `total_steps(train_samples)` sizes the learning-rate schedule.

    Call it after seeding: the model's initial weights come from the global torch RNG.
    """
    if config.task.kind == "factory":
        return _from_factory(config.task.factory, config.base, device)  # type: ignore[arg-type]
    val_data: TensorDataset | None
    if config.task.kind == "digits":
        from trainguard.demo.digits import make_digits

        train_data, val_data = make_digits(config.task.samples, config.task.data_seed), make_digits(config.task.val_samples, config.task.data_seed + 1)
        inputs, outputs, classification = 64, 10, True
    else:
        train_data, val_data, outputs = read_tables(config.task, config.base)
        inputs, classification = train_data.tensors[0].shape[1], config.task.problem == "classification"
    loss_fn = nn.CrossEntropyLoss() if classification else nn.MSELoss()
    model = mlp(inputs, outputs, config.model).to(device)
    optimizer = _optimizer(model, config.optimizer)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps(len(train_data)))
                 if config.optimizer.schedule == "cosine" else None)
    return Task(model, loss_fn, optimizer, train_data, val_data, scheduler, {"accuracy": accuracy} if classification else {})


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


# -- user code --------------------------------------------------------------------------------------
def _from_factory(target: str, base: Path, device: torch.device) -> Task:
    parts = _call_factory(target, base)
    missing = [key for key in ("model", "loss_fn", "optimizer", "train_data") if key not in parts]
    if missing:
        raise ConfigError(f"the factory {target} returned no {', '.join(missing)} (it must return a dict with model, "
                          "loss_fn, optimizer (parameters -> optimizer), train_data and optionally val_data, scheduler, metrics)")
    if not isinstance(parts["model"], nn.Module) or not callable(parts["optimizer"]):
        raise ConfigError(f"the factory {target} must return model as an nn.Module and optimizer as a function of the parameters")
    if isinstance(parts["train_data"], DataLoader):
        raise ConfigError(f"the factory {target} must return train_data as a Dataset, not a DataLoader: trainguard train "
                          "builds the loader itself so that the data order is a pure function of (seed, epoch)")
    optimizer = parts["optimizer"](parts["model"].to(device).parameters())
    scheduler = parts["scheduler"](optimizer) if parts.get("scheduler") is not None else None
    metrics = parts.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(isinstance(name, str) and callable(fn) for name, fn in metrics.items()):
        raise ConfigError(f"the factory {target} must return metrics as a dict of names to functions (outputs, targets) -> tensor")
    return Task(parts["model"], parts["loss_fn"], optimizer, parts["train_data"], parts.get("val_data"), scheduler, metrics)


def _call_factory(target: str, base: Path) -> dict[str, Any]:
    try:
        parts = call_function(target, find_function(target, label="the factory", base=base))
    except TargetError as error:
        raise ConfigError(f"task.factory: {error}") from None
    if not isinstance(parts, dict):
        raise ConfigError(f"the factory {target} must return a dict (it returned {type(parts).__name__})")
    return parts
