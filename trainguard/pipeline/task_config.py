"""The TOML configuration of `trainguard train`: read, checked key by key, turned into dataclasses.

    [task]       kind = "digits" | "csv" | "parquet" | "factory", and that kind's keys
    [model]      hidden, dropout (the MLP used for "digits", "csv" and "parquet")
    [optimizer]  name, lr, weight_decay, momentum, schedule
    [train]      the FitConfig fields (except out_dir and resume, which come from the command line)
    [guard]      select, ignore (rule codes, slugs or prefixes), thresholds (the guard's numbers)

Every mistake (unknown section or key, wrong type, value out of range) is one ConfigError
sentence naming the key.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from trainguard.pipeline.settings import ConfigError, FitConfig, check_range

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib


@dataclass(frozen=True)
class TaskSection:
    """What to train on. "digits": the built-in 8x8 digits (`samples`, `val_samples`, `data_seed`).
    "csv" / "parquet": `train` (and optional `val`) files with the `features` columns and the
    `target` column, for a `problem` of classification or regression. "factory": `factory = "module:function"`
    (or "path/to/file.py:function") returning the dict that `trainguard doctor` takes."""

    kind: Literal["digits", "csv", "parquet", "factory"] = "digits"
    samples: int = 2000
    val_samples: int = 500
    data_seed: int = 1
    train: str | None = None
    val: str | None = None
    features: list[str] | None = None
    target: str | None = None
    problem: Literal["classification", "regression"] = "classification"
    factory: str | None = None

    def __post_init__(self) -> None:
        check_range("task.samples", self.samples, at_least=1)
        check_range("task.val_samples", self.val_samples, at_least=1)
        check_range("task.data_seed", self.data_seed, at_least=0)


@dataclass(frozen=True)
class ModelSection:
    """The MLP of the built-in tasks: hidden layer widths and dropout after each."""

    hidden: list[int] = dataclasses.field(default_factory=lambda: [128])
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for width in self.hidden:
            check_range("each of model.hidden", width, at_least=1)
        check_range("model.dropout", self.dropout, at_least=0, below=1)


@dataclass(frozen=True)
class OptimizerSection:
    """The optimizer of the built-in tasks, and a learning-rate schedule stepped per optimizer step."""

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: Literal["constant", "cosine"] = "constant"

    def __post_init__(self) -> None:
        check_range("optimizer.lr", self.lr, above=0)
        check_range("optimizer.weight_decay", self.weight_decay, at_least=0)
        check_range("optimizer.momentum", self.momentum, at_least=0, below=1)


@dataclass(frozen=True)
class GuardSection:
    """The runtime guard's rules and thresholds, as `trainguard run --select/--ignore/--threshold`."""

    select: list[str] | None = None
    ignore: list[str] | None = None
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)

    def watch_options(self) -> dict[str, Any]:
        """The keyword arguments of `trainguard.watch()`."""
        return {"select": self.select, "ignore": self.ignore, "thresholds": self.thresholds}


@dataclass(frozen=True)
class TrainConfig:
    """A whole `trainguard train` configuration; `base` is the folder relative paths start from."""

    task: TaskSection
    model: ModelSection
    optimizer: OptimizerSection
    train: dict[str, Any]
    base: Path
    guard: GuardSection = dataclasses.field(default_factory=GuardSection)

    def fit_config(self, **command_line: Any) -> FitConfig:
        """The FitConfig of this run: the [train] keys, overridden by the command line's."""
        return FitConfig(**{**self.train, **{k: v for k, v in command_line.items() if v is not None}})


# The embedded default task (no --config): the digits for as many epochs as the demo trains.
DEFAULT_TASK_TRAIN = {"epochs": 5}

# [train] may set every FitConfig field but these, which belong to one invocation.
_COMMAND_LINE_ONLY = {"out_dir", "resume"}


def read_config(path: str | Path | None) -> TrainConfig:
    """Read and check a TOML file (None: the embedded default task, digits)."""
    if path is None:
        return TrainConfig(TaskSection(), ModelSection(), OptimizerSection(), dict(DEFAULT_TASK_TRAIN), Path.cwd())
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} cannot be read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML ({error})") from None
    sections = {"task": TaskSection, "model": ModelSection, "optimizer": OptimizerSection, "train": FitConfig,
                "guard": GuardSection}
    unknown = sorted(set(document) - set(sections))
    if unknown:
        raise ConfigError(f"{path}: unknown section [{unknown[0]}] (expected: {', '.join(f'[{s}]' for s in sections)})")
    for name in sections:
        if not isinstance(document.get(name, {}), dict):
            raise ConfigError(f"{path}: {name} must be a table ([{name}])")
    train = _checked(path, "train", document.get("train", {}), FitConfig, skip=_COMMAND_LINE_ONLY)
    try:
        FitConfig(**train)
    except ConfigError as error:
        raise ConfigError(f"{path}: [train] {error}") from None
    task_values = _checked(path, "task", document.get("task", {}), TaskSection)
    model_values = _checked(path, "model", document.get("model", {}), ModelSection)
    optimizer_values = _checked(path, "optimizer", document.get("optimizer", {}), OptimizerSection)
    try:  # each section checks its values' ranges when it is made
        task, model, optimizer = TaskSection(**task_values), ModelSection(**model_values), OptimizerSection(**optimizer_values)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    _check_task(path, task)
    guard = GuardSection(**_checked(path, "guard", document.get("guard", {}), GuardSection))
    _check_guard(path, guard)
    return TrainConfig(task, model, optimizer, train, path.parent, guard)


def _check_task(path: Path, task: TaskSection) -> None:
    table = ("train", "features", "target")
    required = {"csv": table, "parquet": table, "factory": ("factory",), "digits": ()}[task.kind]
    for key in required:
        if getattr(task, key) is None:
            raise ConfigError(f"{path}: task.{key} is required when task.kind = {task.kind!r}")


def _check_guard(path: Path, guard: GuardSection) -> None:
    from trainguard.catalogue import RuleSelection, UnknownRuleError
    from trainguard.runtime.thresholds import Thresholds

    try:
        RuleSelection.build(guard.select, guard.ignore)
        Thresholds.build(guard.thresholds)
    except (UnknownRuleError, ValueError) as error:
        raise ConfigError(f"{path}: [guard] {error}") from None


def _checked(path: Path, section: str, table: dict[str, Any], cls: type, skip: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    values = {}
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"{path}: unknown key {section}.{key} (expected one of: {', '.join(allowed)})")
        if not _matches(value, hints[key]):
            raise ConfigError(f"{path}: {section}.{key} must be {_describe(hints[key])} (got {value!r})")
        values[key] = float(value) if _is_float(hints[key]) and isinstance(value, int) else value
    return values


def _options(hint: Any) -> tuple[Any, ...]:
    # `X | None` -> (X,): TOML has no null, so an absent key is how a setting stays None.
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(arg for arg in typing.get_args(hint) if arg is not type(None))
    return (hint,)


def _is_float(hint: Any) -> bool:
    return float in _options(hint)


def _matches(value: Any, hint: Any) -> bool:
    for option in _options(hint):
        origin = typing.get_origin(option)
        if origin is Literal and value in typing.get_args(option):
            return True
        if origin is list:
            (item,) = typing.get_args(option)
            if isinstance(value, list) and all(_matches(v, item) for v in value):
                return True
        elif origin is dict:
            _, item = typing.get_args(option)
            if isinstance(value, dict) and all(_matches(v, item) for v in value.values()):
                return True
        elif option is bool and isinstance(value, bool):
            return True
        elif option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        elif option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        elif option is str and isinstance(value, str):
            return True
    return False


def _describe(hint: Any) -> str:
    names = []
    for option in _options(hint):
        if typing.get_origin(option) is Literal:
            names.append(" or ".join(repr(a) for a in typing.get_args(option)))
        elif typing.get_origin(option) is list:
            names.append(f"a list ({_describe(typing.get_args(option)[0])} each)")
        elif typing.get_origin(option) is dict:
            names.append(f"a table ({_describe(typing.get_args(option)[1])} each)")
        else:
            names.append({bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(option, str(option)))
    return " or ".join(names)
