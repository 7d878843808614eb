"""TG102 accumulation-loss-not-scaled: micro-batch losses summed into .grad without dividing by N.

Gradient accumulation is recognized from the code's shape: the optimizer step sits under an
`if` with a modulo (`if (i + 1) % accum == 0`) that the backward is not under, or the backward
runs in an inner loop named for accumulation (`for micro_step in range(grad_accum)`). The
rule fires when every backward reaching that step was called on the raw output of a
mean-reduced loss function: a `loss / N` (or any multiplication) silences it.
"""

from __future__ import annotations

import ast

from trainguard.lint import events as ev
from trainguard.lint.names import source_text
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import TOP, Tensor, must_all
from trainguard.lint.vocabulary import is_accumulation_name

KEY = ("TG102",)
LOOPS = (ast.For, ast.AsyncFor, ast.While)


def accumulation_evidence(backward_controls: tuple, step_controls: tuple) -> str | None:
    """How the code accumulates between these backward and step calls, or None if it does not."""
    common = 0
    while common < min(len(backward_controls), len(step_controls)) and backward_controls[common] is step_controls[common]:
        common += 1
    if not any(isinstance(node, LOOPS) for node in step_controls[:common]):
        return None
    for node in step_controls[common:]:
        if isinstance(node, ast.If) and any(isinstance(part, ast.BinOp) and isinstance(part.op, ast.Mod) for part in ast.walk(node.test)):
            return f"step under `if {source_text(node.test)}`"
    for node in backward_controls[common:]:
        if isinstance(node, (ast.For, ast.AsyncFor)) and is_accumulation_name(source_text(node.target) + " " + source_text(node.iter)):
            return f"backward in `for {source_text(node.target)} in {source_text(node.iter)}`"
    return None


class AccumulationLossNotScaled(LintRule):
    """TG102: reported at the optimizer step of an accumulation window."""

    codes = ("TG102",)
    triggers = (frozenset(("step", "backward")),)  # it compares backward() with the optimizer step

    def on_backward(self, event: ev.Backward, ctx: TraceView) -> None:
        raw = must_all(event.loss, lambda value: isinstance(value, Tensor) and "mean_loss" in value.tags)
        ctx.state.set(KEY, ((raw, tuple(ctx.controls), event.node),))

    def on_optimizer_step(self, event: ev.OptimizerStep, ctx: TraceView) -> None:
        facts = ctx.state.get(KEY)
        if facts and TOP not in facts:
            found = [accumulation_evidence(controls, tuple(ctx.controls)) if raw else None for raw, controls, _ in facts]
            if all(found):
                backward = min((node for _, _, node in facts), key=lambda node: node.lineno)
                self.report(
                    "TG102",
                    event.node,
                    f"gradients are accumulated over several micro-batches ({found[0]}) but each backward() gets "
                    f"the full mean loss: the update is N times too large",
                    evidence={"backward_line": backward.lineno, "accumulation": found[0]},
                )
        ctx.state.set(KEY, ())
