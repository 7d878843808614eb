"""`[tool.trainguard]` / `[tool.trainguard.lint]` in pyproject.toml, merged with the command line."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

LINT_KEYS = {"select", "ignore", "exclude", "per-file-ignores", "fail-on", "max-file-size-kb", "analysis-budget"}
SHARED_KEYS = ("select", "ignore", "fail-on")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True)
class LintConfig:
    """Everything that shapes a lint run; `root` is the folder relative patterns start from."""

    root: Path = field(default_factory=Path.cwd)
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fail_on: str = "error"
    max_file_size_kb: int = 2048
    # Abstract statements the interpreter may spend on one file before it stops (stays silent).
    analysis_budget: int = 10_000
    source: Path | None = None

    def with_options(self, select: str | None, ignore: str | None, exclude: list[str] | None, fail_on: str | None) -> LintConfig:
        """The command line wins: --select replaces, --ignore and --exclude add, --fail-on replaces."""
        return replace(
            self,
            select=_names(select) if select else self.select,
            ignore=self.ignore + _names(ignore),
            exclude=self.exclude + tuple(exclude or ()),
            fail_on=fail_on or self.fail_on,
        )


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise ConfigError(f"expected a list of rule names, got {value!r}")


def find_config(start: Path) -> Path | None:
    """The nearest pyproject.toml above `start` that has a `[tool.trainguard]` table."""
    folder = start if start.is_dir() else start.parent
    for candidate in [folder, *folder.parents]:
        path = candidate / "pyproject.toml"
        if path.is_file():
            try:
                if "trainguard" in _read_toml(path).get("tool", {}):
                    return path
            except ConfigError:
                return path  # a broken pyproject near the code deserves an error, not to be skipped
    return None


def load_config(path: Path | None) -> LintConfig:
    """Read the `[tool.trainguard]` settings of `path` (defaults when None)."""
    if path is None:
        return LintConfig()
    table = _read_toml(path).get("tool", {}).get("trainguard", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.trainguard] must be a table")
    lint_table = table.get("lint", {})
    if not isinstance(lint_table, dict):
        raise ConfigError(f"{path}: [tool.trainguard.lint] must be a table")
    unknown = sorted(set(lint_table) - LINT_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} in [tool.trainguard.lint]; known keys: {', '.join(sorted(LINT_KEYS))}")
    merged = {key: table[key] for key in SHARED_KEYS if key in table} | lint_table
    per_file = merged.get("per-file-ignores", {})
    if not isinstance(per_file, dict):
        raise ConfigError(f"{path}: per-file-ignores must be a table of pattern = [rules]")
    fail_on = merged.get("fail-on", "error")
    if fail_on not in ("error", "warning", "never"):
        raise ConfigError(f"{path}: fail-on must be \"error\", \"warning\" or \"never\", not {fail_on!r}")
    exclude = merged.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(item, str) for item in exclude):
        raise ConfigError(f"{path}: exclude must be a list of patterns")
    return LintConfig(
        root=path.parent,
        select=_names(merged.get("select")),
        ignore=_names(merged.get("ignore")),
        exclude=tuple(exclude),
        per_file_ignores={pattern: _names(names) for pattern, names in per_file.items()},
        fail_on=fail_on,
        max_file_size_kb=_positive_int(merged, "max-file-size-kb", 2048, path),
        analysis_budget=_positive_int(merged, "analysis-budget", 10_000, path),
        source=path,
    )


def _positive_int(table: dict, key: str, default: int, path: Path) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{path}: {key} must be a positive integer, not {value!r}")
    return value


def _read_toml(path: Path) -> dict:
    if tomllib is None:
        raise ConfigError(f"reading {path} on Python 3.10 needs the tomli package: pip install tomli")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
