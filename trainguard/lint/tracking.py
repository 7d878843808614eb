"""Rule-specific tracking of the interpreter: bookkeeping only particular rules read (forward outputs that were
scored, values kept across loop iterations) and the queries rules make of a trace's event log.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from trainguard.lint import events as ev
from trainguard.lint.names import source_text
from trainguard.lint.script import walk
from trainguard.lint.trace_state import Logged, TraceState
from trainguard.lint.values import tensors


class RuleTracking(TraceState):
    """Mixin of `Interpreter`: per-rule bookkeeping and queries of the event log."""

    if TYPE_CHECKING:
        # Defined by the other mixins of `Interpreter`.
        def _bind_name(self, name: str, value: frozenset, naming: bool = True) -> None: ...
        def eval(self, node: ast.expr | None) -> frozenset: ...
        def lookup(self, name: str) -> frozenset: ...
        def _arithmetic(self, op: ast.operator, values: frozenset) -> frozenset: ...

    def score(self, values: frozenset) -> None:
        """The forward outputs in `values` are scored (an evaluation measures them)."""
        for tensor in tensors(values):
            self.scored_origins |= tensor.origins

    # ---- helpers for rules --------------------------------------------------------------------
    def events(self, name: str) -> list[Logged]:
        """This trace's events of one kind, in program order."""
        return [entry for entry in self.log if entry.name == name]

    def backpropagated(self) -> frozenset:
        """Forward-call nodes whose outputs some backward() of this trace went through."""
        origins: set = set()
        for entry in self.events("backward"):
            for value in tensors(entry.event.loss):
                origins |= value.origins
        return frozenset(origins)

    def stepping_loops(self) -> set[ast.AST]:
        """Loops whose body (with the functions it calls) steps an optimizer: training loops."""
        return {loop for entry in self.events("optimizer_step") for loop in entry.loops}

    def _assigned_in_loop(self, target: ast.expr, before_line: int) -> bool:
        """The target (`losses`, `self.history`) is (re)bound inside the innermost loop before this line."""
        loop: ast.AST = self.loops[-1]
        function = self.frames[-1].function
        if isinstance(target, ast.Name) and function is not None and self.loop_frames.get(id(loop)) != self.frames[-1].ident:
            loop = function  # a local of a function called in the loop: each call binds it anew
        known = self.script.loop_assignments.get(id(loop))
        if known is not None and known[0] is loop:
            first_lines = known[1]
        else:
            first_lines = {}
            for statement in walk(loop):
                if isinstance(statement, (ast.Assign, ast.AnnAssign)):
                    for assigned in statement.targets if isinstance(statement, ast.Assign) else [statement.target]:
                        for name in ast.walk(assigned):
                            if isinstance(name, (ast.Name, ast.Attribute)):
                                text = source_text(name)
                                first_lines[text] = min(first_lines.get(text, statement.lineno), statement.lineno)
            self.script.loop_assignments[id(loop)] = (loop, first_lines)
        return first_lines.get(source_text(target), before_line) < before_line

    def _kept_by_reassignment(self, node: ast.Assign) -> bool:
        """`total = total + loss` in a loop keeps `loss` alive like `total += loss`; handles the assignment."""
        if not self.loops or len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name) or not isinstance(node.value, ast.BinOp):
            return False
        name = node.targets[0].id
        left, right = node.value.left, node.value.right
        if isinstance(left, ast.Name) and left.id == name:
            other = right
        elif isinstance(right, ast.Name) and right.id == name:
            other = left
        else:
            return False
        if self._assigned_in_loop(node.targets[0], node.lineno):
            return False
        current = self.lookup(name)
        added = self.eval(other)
        self.emit("keep", ev.Keep(node, added, name))
        self._bind_name(name, self._arithmetic(node.value.op, current | added))
        return True
