"""Which files `trainguard lint` visits: .gitignore-style patterns, defaults, named files."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainguard.lint.discovery import compile_pattern, discover


@pytest.mark.parametrize("pattern, path, folder, matches", [
    ("*.py", "a/b/c.py", False, True),
    ("/build", "build", True, True),
    ("/build", "src/build", True, False),
    ("docs/", "x/docs", True, True),
    ("docs/", "x/docs", False, False),
    ("src/**/gen_*.py", "src/a/b/gen_x.py", False, True),
    ("src/**/gen_*.py", "src/gen_x.py", False, True),
    ("src/**/gen_*.py", "lib/gen_x.py", False, False),
    ("data?.py", "data1.py", False, True),
    ("[ab].py", "b.py", False, True),
    ("[!ab].py", "b.py", False, False),
])
def test_gitignore_style_patterns(tmp_path: Path, pattern: str, path: str, folder: bool, matches: bool) -> None:
    compiled = compile_pattern(pattern, tmp_path)
    assert compiled is not None and compiled.matches(tmp_path / path, folder) is matches


def test_comments_and_blank_lines_are_not_patterns(tmp_path: Path) -> None:
    assert compile_pattern("# note", tmp_path) is None and compile_pattern("   ", tmp_path) is None


def test_discovery_applies_gitignore_negation_defaults_and_user_excludes(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    for name in ("a.py", "b.txt", "skip/x.py", "logs/keep.py", "logs/drop.py", "node_modules/m.py", "pkg/c.py", "pkg/old.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / ".gitignore").write_text("skip/\nlogs/*.py\n!logs/keep.py\n")
    (tmp_path / "pkg" / ".gitignore").write_text("old.py\n")
    found = [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path], [], tmp_path)]
    assert found == ["a.py", "logs/keep.py", "pkg/c.py"]
    found = [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path], ["pkg/"], tmp_path)]
    assert found == ["a.py", "logs/keep.py"]


def test_named_files_are_linted_unless_the_user_excludes_them(tmp_path: Path) -> None:
    (tmp_path / "legacy").mkdir()
    named = tmp_path / "legacy" / "old.py"
    named.write_text("")
    (tmp_path / ".gitignore").write_text("legacy/\n")
    assert list(discover([named], [], tmp_path)) == [named]
    assert list(discover([named], ["legacy/"], tmp_path)) == []
    assert list(discover([named, named], [], tmp_path)) == [named]
