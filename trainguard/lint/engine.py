"""Linting: one file through the interpreter and the rules; many files into one result."""

from __future__ import annotations

import ast
import fnmatch
import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

from trainguard.catalogue import RuleSelection
from trainguard.findings import Finding
from trainguard.lint.config import LintConfig
from trainguard.lint.discovery import discover
from trainguard.lint.interpreter import InitRun, Interpreter
from trainguard.lint.reporter import Reporter
from trainguard.lint.rules import LintRule, load_rules
from trainguard.lint.script import Script
from trainguard.lint.source import ParseFailure, parse_bytes, read_source
from trainguard.lint.trace_state import BudgetExceeded
from trainguard.lint.trace_view import TraceView
from trainguard.suppression import find_suppressions

# Files that import none of these and never call backward() and step() cannot hold a training
# loop worth checking; parsing them still reports syntax errors, but the analysis is skipped
# (most files of a large tree).
ECOSYSTEM = ("torch", "lightning", "pytorch_lightning", "transformers", "accelerate", "timm", "torchvision", "deepspeed")
TRACE_BUDGET = 3_000


@dataclass
class LintResult:
    """What a lint run found: findings, files that could not be linted, and how many files it read."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[ParseFailure] = field(default_factory=list)
    files: int = 0
    analysed: int = 0  # files the interpreter ran over (the others hold no training code and were only parsed)


def analyze(script: Script, reporter: Reporter, rule_classes: Iterable[type[LintRule]], budget: int) -> None:
    """Run every rule over every trace of the script: the module as a program, then each function
    and method on its own (they may be called from elsewhere)."""
    classes = [cls for cls in rule_classes if any(code in reporter.enabled for code in cls.codes)]
    if not classes:
        return
    for cls in classes:
        check = getattr(cls, "check_script", None)
        if check is not None:
            check(cls(reporter), script)
    entries: list[tuple[ast.AST | None, str | None]] = [(None, None)]
    for node in script.all_classes:
        entries += [(item, node.name) for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
    methods = {id(function) for function, _ in entries}
    entries += [(node, None) for node in script.all_functions if id(node) not in methods]
    triggers = [cls.trace_triggers(script) for cls in classes]
    if None not in triggers:  # skip the functions in which no enabled rule could report
        relevant = script.relevant_functions(frozenset(group for groups in triggers for group in groups))  # type: ignore[union-attr]
        entries = [(function, owner) for function, owner in entries if function is None or id(function) in relevant]
    built: dict[str, InitRun] = {}  # per class: what its __init__ left, for the traces of its methods
    for function, class_name in entries:
        if budget <= 0:
            return
        rules = [cls(reporter) for cls in classes]
        interpreter = Interpreter(script, rules, budget=min(budget, TRACE_BUDGET))
        try:
            if function is None:
                interpreter.run_module()
            else:
                interpreter.run_function(function, class_name, built)  # type: ignore[arg-type]
        except (BudgetExceeded, RecursionError):
            continue  # what was reported holds; the rest of this trace stays unseen
        finally:
            budget -= min(budget, TRACE_BUDGET) - max(interpreter.budget, 0)
        view: TraceView = interpreter  # rules read the trace through its narrow view (mypy checks the interpreter offers it)
        for rule in rules:
            end = getattr(rule, "end_trace", None)
            if end is not None:
                end(view)


def lint_source(
    source: str | bytes, path: str = "<string>", select: str | None = None, ignore: str | None = None, budget: int | None = None
) -> LintResult:
    """Lint one file's text (the API behind `trainguard lint`, handy in tests and editors)."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    parsed = parse_bytes(data, path)
    result = LintResult(files=1)
    if isinstance(parsed, ParseFailure):
        result.errors.append(parsed)
        return result
    enabled = RuleSelection.build(select, ignore).codes
    on_disk = Path(path)
    folder = on_disk.parent if path != "<string>" and on_disk.is_file() else None  # its project-local imports
    findings = _lint_parsed(parsed.source, parsed.tree, path, enabled, budget or LintConfig().analysis_budget, folder=folder)
    result.findings, result.analysed = findings or [], int(findings is not None)
    return result


@lru_cache(maxsize=1)
def _rule_classes() -> tuple[type[LintRule], ...]:
    return tuple(load_rules())


def _lint_parsed(
    source: str, tree: ast.Module, path: str, enabled: frozenset[str], budget: int, analyse_all: bool = False, folder: Path | None = None
) -> list[Finding] | None:
    """The file's findings, or None when it holds no training code and was not analysed (unless `analyse_all`)."""
    if not analyse_all and "torch" not in source and not (".backward(" in source and ".step(" in source):
        return None
    script = Script(path, source, tree, folder)
    if not analyse_all and not any(name.split(".")[0] in ECOSYSTEM for name in script.imports.names.values()) and ".backward(" not in source:
        return None
    reporter = Reporter(path, enabled, find_suppressions(source))
    reporter.is_foreign = script.is_foreign
    analyze(script, reporter, _rule_classes(), budget)
    return reporter.findings


def lint_paths(paths: Iterable[Path], config: LintConfig, analyse_all: bool = False) -> LintResult:
    """Lint files and folders with a configuration; problems with single files never stop the run.

    `analyse_all` runs the analysis on files without training code too (robustness tests)."""
    result = LintResult()
    selection = RuleSelection.build(list(config.select) or None, list(config.ignore)).codes
    with _collection_paused():
        _lint_files(paths, config, analyse_all, selection, result)
    return result


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector: the syntax trees alive at once (the files parsed
    last, the sibling modules) made each collection walk millions of nodes, about a third of a run
    over library code, while a run leaves next to no cyclic garbage (a few hundred objects over
    torch's 500 files; everything else is freed by reference counting as usual)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _lint_files(paths: Iterable[Path], config: LintConfig, analyse_all: bool, selection: frozenset[str], result: LintResult) -> None:
    for path in discover(paths, config.exclude, config.root):
        shown = _display(path)
        result.files += 1
        parsed = read_source(path, shown, config.max_file_size_kb * 1024)
        if isinstance(parsed, ParseFailure):
            result.errors.append(parsed)
            continue
        enabled = selection - _per_file_ignored(path, config)
        try:
            findings = _lint_parsed(parsed.source, parsed.tree, shown, enabled, config.analysis_budget, analyse_all, path.parent)
        except Exception as error:  # a bug of ours must not hide the other files' results
            result.errors.append(ParseFailure(shown, f"internal error in trainguard lint ({type(error).__name__}: {error}); please report it"))
            continue
        if findings is not None:
            result.findings += findings
            result.analysed += 1


def _per_file_ignored(path: Path, config: LintConfig) -> frozenset[str]:
    if not config.per_file_ignores:
        return frozenset()
    resolved = path.resolve()
    try:
        relative = resolved.relative_to(config.root.resolve()).as_posix()
    except ValueError:
        relative = resolved.as_posix()
    ignored: set[str] = set()
    for pattern, names in config.per_file_ignores.items():
        if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(path.name, pattern):
            ignored |= RuleSelection.build(list(names), None).codes
    return frozenset(ignored)


def _display(path: Path) -> str:
    """Paths as the user will click them: relative to the working folder when below it."""
    try:
        return Path(os.path.relpath(path)).as_posix() if not str(os.path.relpath(path)).startswith("..") else path.as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()
