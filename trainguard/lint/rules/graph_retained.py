"""TG204 graph-retained: a tensor that still holds its graph kept across training steps.

`losses.append(loss)` or `total += loss` in a training loop, where the container or
accumulator outlives the iteration and the value certainly carries a graph (a loss or model
output computed with gradients enabled, not `.item()` / `.detach()`), and the kept values
survive an optimizer step: the keeper may still hold them when the next value is kept. A list
emptied after each step (REINFORCE's log-probabilities, consumed by the episode's backward and
then cleared with `del lst[:]`, `lst.clear()`, `lst = []` or `del lst`) keeps nothing across steps.
"""

from __future__ import annotations

import ast

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule, line_of
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Tensor, Thing, must_all, things

KEY = "TG204"
HELD, ACROSS_STEP, CLEARED = "held", "held across a step", "cleared"


def _keeper(container: frozenset, text: str) -> Thing | str:
    """What identifies a keeper: its list when known (aliases share it), else its source text."""
    lists = things(container, "list")
    return lists[0] if len(lists) == 1 and len(container) == 1 else text


class GraphRetained(LintRule):
    """TG204, at the line that keeps the tensor."""

    codes = ("TG204",)
    # Outputs carry a graph only where grad mode is known to be on: the module's trace, or these.
    triggers = (frozenset(("step", "enable_grad")), frozenset(("step", "set_grad_enabled")))

    def __init__(self, reporter) -> None:
        super().__init__(reporter)
        self.candidates: list[tuple[ev.Keep, tuple[ast.AST, ...]]] = []
        self.survivors: set[ast.AST] = set()  # keep nodes reached while the keeper held values from before a step

    def on_keep(self, event: ev.Keep, ctx: TraceView) -> None:
        if not must_all(event.value, lambda value: isinstance(value, Tensor) and value.graph):
            return
        key = (KEY, _keeper(event.container, event.keeper))
        if ACROSS_STEP in ctx.state.get(key):
            self.survivors.add(event.node)
        self.candidates.append((event, tuple(ctx.loops)))
        ctx.state.set(key, (HELD,))

    def on_optimizer_step(self, event: ev.OptimizerStep, ctx: TraceView) -> None:
        if not event.certain:
            return  # `env.step(action)` is no training step
        for key in list(ctx.state.keys_about(KEY)):
            held = ctx.state.facts[key]
            if HELD in held:
                ctx.state.set(key, (held - {HELD}) | {ACROSS_STEP})

    def on_clear(self, event: ev.Clear, ctx: TraceView) -> None:
        key = (KEY, _keeper(event.container, event.keeper))
        if key in ctx.state.facts:
            ctx.state.set(key, (CLEARED,))

    def end_trace(self, ctx: TraceView) -> None:
        """Report the kept graphs that survive an optimizer step of a loop around them."""
        training_loops = ctx.stepping_loops()
        for event, loops in self.candidates:
            loop = next((loop for loop in reversed(loops) if loop in training_loops), None)
            if loop is not None and event.node in self.survivors:
                self.report(
                    "TG204",
                    event.node,
                    f"{event.keeper} keeps a tensor that still holds its autograd graph across training steps: "
                    f"every step's graph stays in memory",
                    evidence={"kept_in": event.keeper, "loop_line": line_of(loop)},
                )
