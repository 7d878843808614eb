"""Which files to lint: the Python files under the given paths, minus excluded ones.

Excludes follow .gitignore syntax (`*`, `**`, `?`, a leading or inner `/` anchors a pattern to its
folder, a trailing `/` matches folders only, `!` re-includes). They come from the built-in list
of tool and environment folders, from `--exclude` / `exclude` in the configuration (relative to
the configuration's folder), and from the `.gitignore` files met on the way down.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

DEFAULT_EXCLUDES = (
    ".git/", ".hg/", ".svn/", ".venv/", "venv/", ".tox/", ".nox/", "__pycache__/", ".mypy_cache/",
    ".pytest_cache/", ".ruff_cache/", "node_modules/", "site-packages/", ".eggs/", "*.egg-info/", ".ipynb_checkpoints/",
)
PYTHON_SUFFIXES = (".py", ".pyw")


@dataclass(frozen=True)
class Pattern:
    """One compiled exclude pattern, relative to `base`."""

    regex: re.Pattern[str]
    base: Path
    negated: bool
    folders_only: bool
    anchored: bool

    def matches(self, path: Path, is_folder: bool) -> bool:
        """Does the pattern exclude this path (a folder when `is_folder`)?"""
        if self.folders_only and not is_folder:
            return False
        if not self.anchored:
            return self.regex.fullmatch(path.name) is not None
        try:
            relative = path.relative_to(self.base).as_posix()
        except ValueError:
            return False
        return self.regex.fullmatch(relative) is not None


def compile_pattern(text: str, base: Path) -> Pattern | None:
    """A .gitignore-style line as a Pattern (None for blank lines and comments)."""
    line = text.rstrip("\n").rstrip()
    if not line or line.startswith("#"):
        return None
    negated = line.startswith("!")
    line = line[1:] if negated else line
    folders_only = line.endswith("/")
    line = line.rstrip("/")
    anchored = "/" in line
    line = line.lstrip("/")
    if not line:
        return None
    return Pattern(re.compile(_glob_to_regex(line)), base, negated, folders_only, anchored)


def _glob_to_regex(glob: str) -> str:
    parts = []
    index = 0
    while index < len(glob):
        if glob.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif glob.startswith("/**", index) and index + 3 == len(glob):
            parts.append("(?:/.*)?")
            index += 3
        elif glob.startswith("**", index):
            parts.append(".*")
            index += 2
        elif glob[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif glob[index] == "?":
            parts.append("[^/]")
            index += 1
        elif glob[index] == "[" and "]" in glob[index + 1 :]:
            end = glob.index("]", index + 1)
            body = glob[index + 1 : end].replace("\\", "\\\\")
            parts.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            index = end + 1
        else:
            parts.append(re.escape(glob[index]))
            index += 1
    return "".join(parts)


def _excluded(patterns: Iterable[Pattern], path: Path, is_folder: bool) -> bool:
    excluded = False
    for pattern in patterns:
        if pattern.matches(path, is_folder):
            excluded = not pattern.negated
    return excluded


def _gitignore(folder: Path) -> list[Pattern]:
    try:
        lines = (folder / ".gitignore").read_text("utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [p for p in (compile_pattern(line, folder) for line in lines) if p is not None]


def discover(paths: Iterable[Path], excludes: Iterable[str], root: Path) -> Iterator[Path]:
    """Python files under `paths`, each once, in a stable order. Named files are linted unless
    the user's own excludes match them; folders are walked with every exclude applied."""
    user = [p for p in (compile_pattern(text, root.resolve()) for text in excludes) if p is not None]
    defaults = [p for p in (compile_pattern(text, root) for text in DEFAULT_EXCLUDES) if p is not None]
    seen: set[Path] = set()
    for given in paths:
        path = given.resolve()
        if path.is_file():
            named_excluded = _excluded(user, path, False) or any(_excluded(user, parent, True) for parent in path.parents)
            if path not in seen and not named_excluded:
                seen.add(path)
                yield given
            continue
        inherited = [pattern for folder in _repository_parents(path) for pattern in _gitignore(folder)]
        yield from _walk(given, path, defaults + inherited, user, seen)


def _repository_parents(path: Path) -> list[Path]:
    """The folders above `path` up to its git repository's root, outermost first (none outside a repository)."""
    for index, folder in enumerate(path.parents):
        if (folder / ".git").exists():
            return list(reversed(path.parents[: index + 1]))
    return []


def _walk(shown: Path, folder: Path, ignored: list[Pattern], user: list[Pattern], seen: set[Path]) -> Iterator[Path]:
    ignored = ignored + _gitignore(folder)
    patterns = ignored + user  # the user's excludes come last: no .gitignore `!` re-includes them
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        full = folder / entry.name
        try:
            is_folder = entry.is_dir()
            is_file = entry.is_file()
        except OSError:
            continue
        if is_folder and not entry.is_symlink() and not _excluded(patterns, full, True):
            yield from _walk(shown / entry.name, full, ignored, user, seen)
        elif is_file and entry.name.endswith(PYTHON_SUFFIXES) and full not in seen and not _excluded(patterns, full, False):
            seen.add(full)
            yield shown / entry.name
