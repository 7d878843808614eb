"""TG204 graph-retained: a tensor that still holds its graph kept across training steps.

`losses.append(loss)` or `total += loss` in a training loop, where the container or
accumulator outlives the iteration and the value certainly carries a graph (a loss or model
output computed with gradients enabled, not `.item()` / `.detach()`).
"""

from __future__ import annotations

import ast

from trainguard.lint import events as ev
from trainguard.lint.interpreter import Interpreter
from trainguard.lint.rules import LintRule
from trainguard.lint.values import Tensor, must_all


class GraphRetained(LintRule):
    """TG204, at the line that keeps the tensor."""

    codes = ("TG204",)

    def __init__(self, reporter) -> None:  # type: ignore[no-untyped-def]
        super().__init__(reporter)
        self.candidates: list[tuple[ev.Keep, ast.AST]] = []

    def on_keep(self, event: ev.Keep, ctx: Interpreter) -> None:
        if must_all(event.value, lambda value: isinstance(value, Tensor) and value.graph):
            self.candidates.append((event, ctx.loops[-1]))

    def end_trace(self, ctx: Interpreter) -> None:
        """Report the kept graphs whose loop steps an optimizer."""
        training_loops = ctx.stepping_loops()
        for event, loop in self.candidates:
            if loop in training_loops:
                self.report(
                    "TG204",
                    event.node,
                    f"{event.keeper} keeps a tensor that still holds its autograd graph across training steps: "
                    f"every step's graph stays in memory",
                    evidence={"kept_in": event.keeper, "loop_line": loop.lineno},
                )
