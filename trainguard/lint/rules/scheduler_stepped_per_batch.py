"""TG115 scheduler-stepped-per-batch: an epoch-scale LR schedule stepped once per batch.

A `scheduler.step()` directly in the body of a loop that iterates a DataLoader and steps an
optimizer (no `if` between them: `if i % 100 == 0` steps every 100 batches on purpose), inside
an outer (epoch) loop (a single pass may be a run sized in steps that ends with its schedule), for a
StepLR / MultiStepLR / CosineAnnealingLR whose length is written in epochs, or an ExponentialLR
whose gamma is an epoch's decay. "In epochs" means: the length is an expression that names an
epoch count and no step or batch count (`T_max=args.epochs`, `milestones=[epochs // 2]`), or
integer literals of at most EPOCH_LITERAL (`step_size=30`, `milestones=[100, 150]`); a literal
above it may be a number of steps and is not judged. ExponentialLR counts with a literal gamma
below EPOCH_GAMMA: stepped per batch, 0.95 leaves 0.6 % of the rate after 100 batches.
"""

from __future__ import annotations

import ast

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule, line_of
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Thing, things

EPOCH_LITERAL = 300
EPOCH_GAMMA = 0.99
# The class's argument that sizes the schedule, with its position after the optimizer.
HORIZON = {"StepLR": "step_size", "MultiStepLR": "milestones", "CosineAnnealingLR": "T_max", "ExponentialLR": "gamma"}
STEP_COUNTS = ("len(", "step", "iter", "batch", "sample")


def _argument(node: ast.Call, name: str) -> ast.expr | None:
    if len(node.args) > 1:
        return node.args[1]
    return next((keyword.value for keyword in node.keywords if keyword.arg == name), None)


def _in_epochs(expr: ast.expr) -> bool:
    """The schedule length `expr` is written in epochs (see the module docstring)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, int) and not isinstance(expr.value, bool):
        return 0 < expr.value <= EPOCH_LITERAL
    if isinstance(expr, (ast.List, ast.Tuple)) and expr.elts:
        return all(_in_epochs(element) for element in expr.elts)
    text = ast.unparse(expr).lower()
    return "epoch" in text and not any(count in text for count in STEP_COUNTS)


def epoch_scale(scheduler: Thing) -> str | None:
    """The schedule's class name when the scheduler is sized in epochs, else None."""
    name = str(scheduler.facts.get("qualname", "")).rsplit(".", 1)[-1]
    node = scheduler.node
    if name not in HORIZON or not isinstance(node, ast.Call):
        return None
    horizon = _argument(node, HORIZON[name])
    if horizon is None:
        return None
    if name == "ExponentialLR":
        gamma = horizon.value if isinstance(horizon, ast.Constant) else None
        return name if isinstance(gamma, float) and 0 < gamma < EPOCH_GAMMA else None
    return name if _in_epochs(horizon) else None


class SchedulerSteppedPerBatch(LintRule):
    """TG115, per trace: scheduler steps directly in a training loop over a DataLoader."""

    codes = ("TG115",)
    triggers = (frozenset(("step", "DataLoader")),)  # a scheduler stepped in a loop over a loader made in the trace

    def end_trace(self, ctx: TraceView) -> None:
        training_loops = ctx.stepping_loops()
        loader_loops = {
            entry.event.node: things(entry.event.iterated, "loader")[0]
            for entry in ctx.events("loop_start")
            if entry.event.node in training_loops and things(entry.event.iterated, "loader")
        }
        reported: set[int] = set()
        for entry in ctx.events("scheduler_step"):
            event: ev.SchedulerStep = entry.event
            if not entry.controls or entry.controls[-1] not in loader_loops or id(event.node) in reported:
                continue
            if entry.loops.index(entry.controls[-1]) == 0:
                continue  # no epoch loop around the batch loop
            if len(event.node.args) or event.node.keywords:
                continue  # step(epoch) / step(metric): not a plain per-call step
            for scheduler in event.schedulers:
                name = epoch_scale(scheduler)
                if name is None:
                    continue
                reported.add(id(event.node))
                loader = loader_loops[entry.controls[-1]]
                self.report(
                    "TG115",
                    event.node,
                    f"{scheduler.name}.step() runs once per batch of {loader.name}, but the {name} of line "
                    f"{line_of(scheduler.node)} is sized in epochs: its learning rate runs out within the first epoch",
                    evidence={"scheduler": scheduler.name, "scheduler_line": line_of(scheduler.node)},
                )
                break
