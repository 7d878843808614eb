"""TG110 scheduler-before-optimizer: `scheduler.step()` when its optimizer has not stepped since.

Each scheduler is "waiting" from its construction and after each of its steps, and "stepped"
once its optimizer steps. A scheduler step that is certainly "waiting" is the bug: the first
value of the schedule is skipped (PyTorch warns at run time, once). A per-epoch scheduler after
the batch loop is fine; one at the top of the epoch loop is not.
"""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.interpreter import Interpreter
from trainguard.lint.rules import LintRule
from trainguard.lint.values import Thing

KEY = "TG110"


def _linked(scheduler: Thing, optimizers: tuple[Thing, ...]) -> bool:
    linked = scheduler.facts.get("optimizers") or ()
    return not linked or not optimizers or any(optimizer in linked for optimizer in optimizers)


class SchedulerBeforeOptimizer(LintRule):
    """TG110, at the scheduler's step."""

    codes = ("TG110",)

    def on_created(self, event: ev.Created, ctx: Interpreter) -> None:
        if event.thing.kind == "scheduler":
            ctx.state.set((KEY, event.thing), ("waiting",))

    def on_optimizer_step(self, event: ev.OptimizerStep, ctx: Interpreter) -> None:
        for key in list(ctx.state.keys_about(KEY)):
            if not event.certain:
                ctx.state.set(key, ctx.state.facts[key] | {"stepped"})
            elif _linked(key[1], event.optimizers):
                ctx.state.set(key, ("stepped",))

    def on_scheduler_step(self, event: ev.SchedulerStep, ctx: Interpreter) -> None:
        for scheduler in event.schedulers:
            if ctx.state.must((KEY, scheduler), "waiting"):
                linked = scheduler.facts.get("optimizers") or ()
                optimizer = linked[0].name if linked else "the optimizer"
                self.report(
                    "TG110",
                    event.node,
                    f"{scheduler.name}.step() runs before {optimizer}.step(): the schedule is one step ahead and "
                    f"its first learning rate is never used",
                    evidence={"scheduler": scheduler.name, "optimizer": optimizer},
                )
            if (KEY, scheduler) in ctx.state.facts:
                ctx.state.set((KEY, scheduler), ("waiting",))

    def on_forget(self, forgotten: set[Thing], ctx: Interpreter) -> None:
        # Unseen code got the optimizer: it may have stepped it.
        optimizers = tuple(thing for thing in forgotten if thing.kind == "optimizer")
        for key in list(ctx.state.keys_about(KEY)) if optimizers else ():
            if _linked(key[1], optimizers):
                ctx.state.set(key, ctx.state.facts[key] | {"stepped"})
