"""The linter never crashes: the whole standard library, odd files, and fuzzed input."""

from __future__ import annotations

import ast
import copy
import random
import sysconfig
from pathlib import Path

import pytest

from trainguard.lint.config import LintConfig
from trainguard.lint.engine import lint_paths, lint_source

FIXTURES = sorted((Path(__file__).parent / "fixtures").rglob("*.py"))


def internal_errors(result) -> list:  # type: ignore[no-untyped-def]
    return [error for error in result.errors if "internal error" in error.message]


STDLIB = Path(sysconfig.get_paths()["stdlib"])


def test_whole_standard_library_lints_without_an_exception() -> None:
    """Every file is read, parsed and run through the analyzer: a normal run would only parse
    these files (they hold no training code), so the analysis is forced, on a small budget per
    file (the sample below goes deep)."""
    stdlib = STDLIB
    result = lint_paths([stdlib], LintConfig(root=stdlib, analysis_budget=1_000), analyse_all=True)
    assert result.files > 500
    assert internal_errors(result) == []
    assert result.analysed == result.files - len(result.errors)
    # Its test data includes deliberately broken files: each is reported once, as a parse error.
    paths = [error.path for error in result.errors]
    assert len(paths) == len(set(paths))
    assert all(error.message.startswith(("syntax error", "cannot decode", "the file")) for error in result.errors)


def test_standard_library_sample_goes_through_the_analyzer() -> None:
    """A normal run only parses files without training code (most of the standard library); force
    the analysis on every eighth file so the interpreter meets the whole language (async, match,
    walrus, decorators, deep nesting, odd assignments) and must not raise on any of it."""
    files = [path for path in sorted(STDLIB.rglob("*.py")) if not {"site-packages", "dist-packages"} & set(path.parts)][::8]
    result = lint_paths(files, LintConfig(root=STDLIB), analyse_all=True)
    assert internal_errors(result) == []
    assert result.files == len(files)
    assert result.analysed == result.files - len(result.errors) >= 200


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", None),
        (b"\n\n# only a comment\n", None),
        (b"import torch\nprint 'hello'\n", "syntax error: Missing parentheses in call to 'print'. Did you mean print(...)? (Python 2 code?)"),
        (b"import torch\nx = 1\x00\n", "the file contains NUL bytes"),
        (b"import torch\nname = '\xff\xfe'\n", "cannot decode the file as utf-8: invalid byte 0xff"),
        (b"# -*- coding: latin-1 -*-\nimport torch\nname = '\xe9'\n", None),
        (b"\xef\xbb\xbfimport torch\n", None),
        (b"# -*- coding: no-such-codec -*-\nimport torch\n", "cannot decode the file: unknown encoding: no-such-codec"),
        (b"import torch\nx = " + b"(" * 300 + b")" * 300 + b"\n", "syntax error: too many nested parentheses"),
        (b"import torch\n" + b"x = -" + b"-" * 100_000 + b"1\n", None),
    ],
    ids=["empty", "comment", "python2", "nul", "not-utf8", "latin1-cookie", "bom", "bad-cookie", "deep-nesting", "long-unary"],
)
def test_odd_files_are_linted_or_reported_once_with_a_reason(data: bytes, reason: str | None) -> None:
    result = lint_source(data, "odd.py")
    if reason is None:
        assert result.errors == [] or "too complex" in result.errors[0].message
    else:
        assert [error.message for error in result.errors] == [reason]


def test_notebook_exported_to_py_is_linted_with_its_magic_lines_skipped() -> None:
    source = """\
# %%
%matplotlib inline
!pip install torch
import torch
# %%
model = torch.nn.Linear(2, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    model(torch.randn(1, 2)).sum().backward()
    optimizer.step()
"""
    result = lint_source(source, "notebook.py")
    assert result.errors == []
    assert [(f.code, f.line) for f in result.findings] == [("TG101", 10)]


def test_huge_file_is_skipped_with_a_reason(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_text("import torch\n" + "x = 1\n" * 200_000)
    result = lint_paths([big], LintConfig(root=tmp_path, max_file_size_kb=512))
    assert [error.message for error in result.errors] == ["file is larger than 512 KB (raise max-file-size-kb to lint it)"]


def test_deeply_recursive_helpers_and_huge_loops_stay_within_budget() -> None:
    functions = "\n".join(f"def f{i}(m, o):\n    for _ in range(2):\n        f{i + 1}(m, o)\n        f{i + 1}(m, o)\n" for i in range(30))
    source = f"import torch\n{functions}\ndef f30(m, o):\n    m(1).backward()\n    o.step()\nf0(torch.nn.Linear(1, 1), None)\n"
    result = lint_source(source)  # an exception (RecursionError, a blown budget) fails the test
    assert result.analysed == 1 and result.errors == []


def mutate(source: bytes, rng: random.Random) -> bytes:
    """Delete, duplicate, swap or corrupt a slice: mostly-valid code with odd shapes."""
    data = bytearray(source)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        start = rng.randrange(len(data))
        end = min(len(data), start + rng.randint(1, 80))
        choice = rng.random()
        if choice < 0.3:
            del data[start:end]
        elif choice < 0.55:
            data[start:start] = data[start:end]
        elif choice < 0.8:
            lines = bytes(data).split(b"\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
        else:
            data[start:end] = bytes(rng.randrange(256) for _ in range(end - start))
    return bytes(data)


def shuffle_statements(source: bytes, rng: random.Random) -> bytes:
    """Delete, duplicate or move statements inside bodies: valid code in shapes nobody wrote."""
    tree = ast.parse(source)
    bodies = [node.body for node in ast.walk(tree) if isinstance(getattr(node, "body", None), list) and node.body]
    for _ in range(rng.randint(1, 6)):
        body = rng.choice(bodies)
        index = rng.randrange(len(body))
        choice = rng.random()
        if choice < 0.3 and len(body) > 1:
            del body[index]
        elif choice < 0.6:
            body.insert(rng.randrange(len(body) + 1), copy.deepcopy(body[index]))
        else:
            other = rng.choice(bodies)
            other.insert(rng.randrange(len(other) + 1), copy.deepcopy(body[index]))
    return ast.unparse(tree).encode()


def test_fuzzed_inputs_never_raise() -> None:
    rng = random.Random(20240601)
    sources = [path.read_bytes() for path in FIXTURES]
    cases = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 400))) for _ in range(60)]
    cases += [mutate(rng.choice(sources), rng) for _ in range(150)]
    cases += [shuffle_statements(rng.choice(sources), rng) for _ in range(250)]
    analysed = 0
    for data in cases:
        analysed += lint_source(data, "fuzz.py").analysed  # an exception here fails the test
    assert analysed >= 250  # the statement shuffles all parse and import torch: the analysis itself was exercised
