"""Static rules: one module per rule (or small family), each a `LintRule` subclass.

A rule defines `on_<event>(event, ctx)` methods for the interpreter's events
(`trainguard.lint.events`), `end_trace(ctx)` for conclusions drawn over a whole trace (`ctx`: the trace's read-only
`trainguard.lint.trace_view.TraceView`),
and/or `check_script(script)` for checks of the file's structure. Adding a rule means adding a
module here and its fixtures; `load_rules` finds it.
"""

from __future__ import annotations

import ast
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, ClassVar

from trainguard.findings import Severity
from trainguard.plugins import subclasses_in

if TYPE_CHECKING:
    from trainguard.lint.reporter import Reporter
    from trainguard.lint.script import Script
    from trainguard.lint.trace_view import TraceView


class LintRule:
    """Base of the static rules: knows its codes, and reports through the file's reporter.

    The fix text of each finding is its rule's catalogue entry's (the reporter adds it), the same
    the runtime guard prints.

    A new instance is made for every trace (entry point) of a file, so instance attributes are
    per-trace memory; facts that must survive branches and loops belong in the interpreter's state.
    """

    codes: ClassVar[tuple[str, ...]]
    # What the code of a function (with the file code it may call) must use for the rule to be
    # able to report in that function's trace: groups of words, every word of one group
    # (`("step", "backward")`). A function that meets no enabled rule's group is not analysed on
    # its own (the module's trace still runs it). None: every function may matter.
    triggers: ClassVar[tuple[frozenset[str], ...] | None] = None

    @classmethod
    def trace_triggers(cls, script: Script) -> tuple[frozenset[str], ...] | None:
        """The trigger groups for this file (a rule may drop groups the file as a whole rules out)."""
        return cls.triggers

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def report(
        self,
        code: str,
        node: ast.AST,
        message: str,
        *,
        evidence: dict[str, Any] | None = None,
        severity: Severity | None = None,
    ) -> None:
        """One finding at `node`; `severity` may only lower the catalogue's default."""
        self.reporter.report(code, node, message, evidence or {}, severity)


def line_of(node: ast.AST | None) -> int:
    """The line of a node the interpreter keeps as a plain `ast.AST` (a loop around an event, where
    a Thing was made), for messages and evidence; 0 when it has none."""
    return int(getattr(node, "lineno", 0))


def in_test_code(ctx: TraceView) -> bool:
    """Test code (files under tests/, test_*.py, *_test.py, test_* functions) exercises objects on
    purpose: a minimal legacy checkpoint, a direct call of forward() on a freshly built model."""
    path = PurePath(ctx.script.path)
    in_tests = any(part in ("tests", "test") for part in path.parts[:-1]) or path.name.startswith("test_") or path.stem.endswith("_test")
    return in_tests or any(function.name.startswith("test_") for function in ctx.call_stack)


def load_rules() -> list[type[LintRule]]:
    """Every LintRule subclass defined in this package's modules, ordered by first code."""
    return sorted(subclasses_in(__name__, __path__, LintRule, "codes"), key=lambda cls: cls.codes[0])
