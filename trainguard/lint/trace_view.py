"""What a rule may ask of a trace: a read-only view of the interpreter, not the interpreter itself.

Rules receive this as `ctx` in their `on_<event>` and `end_trace` methods. It names exactly what the
rules read; the one thing they may change is `state`, the shared abstract state where a rule keeps its
facts so that branches and loops join them. `Interpreter` satisfies it structurally.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence, Set
from typing import Protocol

from trainguard.lint.script import FunctionNode, Script
from trainguard.lint.trace_state import Logged
from trainguard.lint.values import State


class TraceView(Protocol):
    """One trace as the rules see it: the file, the events so far, and where the trace is now."""

    @property
    def script(self) -> Script:
        """The file being traced."""

    @property
    def state(self) -> State:
        """The abstract state at this point of the trace (rules keep their facts in it)."""

    @property
    def loops(self) -> Sequence[ast.AST]:
        """The loops around the current point, outermost first."""

    @property
    def controls(self) -> Sequence[ast.AST]:
        """The branches (`if`/`match`) around the current point, outermost first."""

    @property
    def call_stack(self) -> Sequence[FunctionNode]:
        """The file functions being run, outermost first."""

    @property
    def log(self) -> Sequence[Logged]:
        """Every event of this trace so far, in program order."""

    @property
    def escaped_origins(self) -> Set[ast.AST]:
        """Forward calls whose outputs code we cannot see received."""

    @property
    def scored_origins(self) -> Set[ast.AST]:
        """Forward calls whose outputs were scored: compared, given to a loss or to a metric."""

    def events(self, name: str) -> list[Logged]:
        """This trace's events of one kind, in program order."""

    def backpropagated(self) -> frozenset:
        """Forward-call nodes whose outputs some backward() of this trace went through."""

    def stepping_loops(self) -> set[ast.AST]:
        """Loops whose body (with the functions it calls) steps an optimizer: training loops."""
