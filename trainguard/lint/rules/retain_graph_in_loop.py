"""TG111 retain-graph-in-loop: every backward of a training loop keeps its graph alive.

`loss1.backward(retain_graph=True); loss2.backward()` in one step is the legitimate use (two
losses sharing a graph); the rule fires only when every backward in the training loop's body
passes the literal `retain_graph=True`.
"""

from __future__ import annotations

from trainguard.lint.rules import LintRule, line_of
from trainguard.lint.trace_view import TraceView


class RetainGraphInLoop(LintRule):
    """TG111, at the backward call."""

    codes = ("TG111",)
    triggers = (frozenset(("step", "backward")),)

    def end_trace(self, ctx: TraceView) -> None:
        """Report backward(retain_graph=True) calls of training loops whose every backward retains."""
        backwards = ctx.events("backward")
        training_loops = ctx.stepping_loops()
        for entry in backwards:
            if entry.event.retain_graph is not True or not entry.loops or entry.loops[-1] not in training_loops:
                continue
            loop = entry.loops[-1]
            if all(other.event.retain_graph is True for other in backwards if loop in other.loops):
                self.report(
                    "TG111",
                    entry.event.node,
                    "backward(retain_graph=True) on every step of the training loop: each step's graph (and its "
                    "saved activations) stays alive, so memory grows or a stale graph is reused",
                    evidence={"loop_line": line_of(loop)},
                )
