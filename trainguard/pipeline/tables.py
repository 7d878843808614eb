"""The tabular tasks of `trainguard train`: CSV or Parquet files with named feature columns and a
target column, read into TensorDatasets.

Features are standardised with the training file's mean and standard deviation (a constant
column is centred, not divided by 0). Classification targets are class labels (any text or
number), mapped to indices in sorted order; regression targets are numbers. Every unusable
input (missing file or column, a value that is not a finite number, an empty cell, a label
only the validation file has) is one ConfigError naming the file, row and column.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import TensorDataset

from trainguard.pipeline.settings import ConfigError
from trainguard.pipeline.task_config import TaskSection

# One table row: its feature values, and its target (a float for regression, a label otherwise).
Row = tuple[list[float], Any]


def read_tables(task: TaskSection, base: Path) -> tuple[TensorDataset, TensorDataset | None, int]:
    """The training and (optional) validation sets of a "csv" or "parquet" task, and the number
    of model outputs (classes, or 1 for regression). Paths are relative to `base`."""
    read = _read_parquet if task.kind == "parquet" else _read_csv
    train_rows = read(base / task.train, task)  # type: ignore[operator]
    val_rows = read(base / task.val, task) if task.val else None
    labels: list[Any] = []
    if task.problem == "classification":
        labels = sorted({target for _, target in train_rows})
        unseen = sorted({target for _, target in val_rows or []} - set(labels))
        if unseen:
            raise ConfigError(f"{task.val} has target values absent from {task.train}: {', '.join(map(str, unseen[:5]))}")
    label_index = {label: index for index, label in enumerate(labels)}
    train_features = torch.tensor([features for features, _ in train_rows], dtype=torch.float32)
    mean, std = train_features.mean(0), train_features.std(0, unbiased=False).clamp_min(1e-12)

    def dataset(rows: list[Row]) -> TensorDataset:
        features = (torch.tensor([f for f, _ in rows], dtype=torch.float32) - mean) / std
        if task.problem == "classification":
            return TensorDataset(features, torch.tensor([label_index[t] for _, t in rows]))
        return TensorDataset(features, torch.tensor([[t] for _, t in rows], dtype=torch.float32))

    outputs = len(labels) if task.problem == "classification" else 1
    return dataset(train_rows), dataset(val_rows) if val_rows else None, outputs


def _read_csv(path: Path, task: TaskSection) -> list[Row]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            _check_columns(path, reader.fieldnames or [], task)
            rows = [_row(record, f"{path}:{line}", task) for line, record in enumerate(reader, 2)]
    except FileNotFoundError:
        raise ConfigError(f"data file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"data file {path} cannot be read ({error})") from None
    return _nonempty(path, rows)


def _read_parquet(path: Path, task: TaskSection) -> list[Row]:
    try:
        import pyarrow
        import pyarrow.parquet as parquet
    except ImportError:
        raise ConfigError(f"reading {path} needs pyarrow (pip install pyarrow, or pip install -e '.[parquet]' in a trainguard checkout)") from None
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist")
    try:
        _check_columns(path, parquet.read_schema(path).names, task)
        table = parquet.read_table(path, columns=[*task.features, task.target])  # type: ignore[misc]
    except (OSError, pyarrow.ArrowException) as error:
        raise ConfigError(f"data file {path} cannot be read ({error})") from None
    records = table.to_pylist()
    return _nonempty(path, [_row(record, f"{path} row {index}", task) for index, record in enumerate(records, 1)])


def _check_columns(path: Path, columns: Sequence[str], task: TaskSection) -> None:
    for column in [*task.features, task.target]:  # type: ignore[misc]
        if column not in columns:
            raise ConfigError(f"{path} has no column {column!r} (its columns: {', '.join(columns) or 'none'})")


def _row(record: dict[str, Any], where: str, task: TaskSection) -> Row:
    features = [_number(record[column], where, column) for column in task.features]  # type: ignore[union-attr]
    target = record[task.target]  # type: ignore[index]
    if task.problem == "regression":
        return features, _number(target, where, task.target)  # type: ignore[arg-type]
    if target is None or target == "":
        raise ConfigError(f"{where}: column {task.target!r} is empty (every row needs a target)")
    return features, target


def _number(value: Any, where: str, column: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: column {column!r} holds {value!r}, not a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: column {column!r} holds {value!r}, not a finite number")
    return number


def _nonempty(path: Path, rows: list[Row]) -> list[Row]:
    if not rows:
        raise ConfigError(f"data file {path} has no rows")
    return rows
