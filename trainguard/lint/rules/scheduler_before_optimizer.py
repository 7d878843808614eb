"""TG110 scheduler-before-optimizer: `scheduler.step()` when its optimizer has not stepped since.

Each scheduler is "waiting" from its construction and after each of its steps, and "stepped"
once its optimizer steps. A scheduler step that is certainly "waiting" is the bug: the first
value of the schedule is skipped (PyTorch warns at run time, once). A per-epoch scheduler after
the batch loop is fine; one at the top of the epoch loop is not.

Only schedulers that step relative to their last step are tracked (torch's `lr_scheduler.*` and
factories returning one, not timm's), and only steps without an explicit epoch: `step(epoch)`
sets the schedule to that epoch. A trace that neither backpropagates, nor steps an optimizer,
nor hands one to code the linter cannot see in a loop is not training (a unit test of a schedule, a
wrapper class's `step()`): its scheduler steps are not reported.
"""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.script import Script
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Thing
from trainguard.lint.vocabulary import steps_relative_schedule

KEY = "TG110"


def _linked(scheduler: Thing, optimizers: tuple[Thing, ...]) -> bool:
    linked = scheduler.facts.get("optimizers") or ()
    return not linked or not optimizers or any(optimizer in linked for optimizer in optimizers)


def _plateau(scheduler: Thing) -> bool:
    return str(scheduler.facts.get("qualname", "")).endswith("ReduceLROnPlateau")


def _explicit_epoch(event: ev.SchedulerStep, scheduler: Thing) -> bool:
    """`scheduler.step(epoch)`: the schedule is set to that epoch (ReduceLROnPlateau's first argument is the metric)."""
    node = event.node
    return len(node.args) > int(_plateau(scheduler)) or any(keyword.arg == "epoch" for keyword in node.keywords)


class SchedulerBeforeOptimizer(LintRule):
    """TG110, at the scheduler's step."""

    codes = ("TG110",)
    triggers = (frozenset(("step",)),)  # it reports at or after a scheduler step

    @classmethod
    def trace_triggers(cls, script: Script) -> tuple[frozenset[str], ...]:
        """Only a file that names a scheduler (`lr_scheduler`, `get_..._schedule...`, `SWALR`) makes one."""
        return cls.triggers if "chedul" in script.source or "SWALR" in script.source else ()

    def __init__(self, reporter) -> None:
        super().__init__(reporter)
        self.early_steps: list[tuple[ev.SchedulerStep, Thing]] = []
        self.optimizer_handed_on = False  # to code the linter cannot see, in a loop: it may train with it

    def on_created(self, event: ev.Created, ctx: TraceView) -> None:
        if event.thing.kind == "scheduler" and steps_relative_schedule(event.thing.facts["qualname"]):
            ctx.state.set((KEY, event.thing), ("waiting",))

    def on_optimizer_step(self, event: ev.OptimizerStep, ctx: TraceView) -> None:
        for key in list(ctx.state.keys_about(KEY)):
            if not event.certain:
                ctx.state.set(key, ctx.state.facts[key] | {"stepped"})
            elif _linked(key[1], event.optimizers):
                ctx.state.set(key, ("stepped",))

    def on_scheduler_step(self, event: ev.SchedulerStep, ctx: TraceView) -> None:
        for scheduler in event.schedulers:
            if ctx.state.must((KEY, scheduler), "waiting") and not _explicit_epoch(event, scheduler):
                self.early_steps.append((event, scheduler))
            if (KEY, scheduler) in ctx.state.facts:
                ctx.state.set((KEY, scheduler), ("waiting",))

    def end_trace(self, ctx: TraceView) -> None:
        """Report the early scheduler steps of a trace that trains."""
        if not ctx.events("backward") and not ctx.events("optimizer_step") and not self.optimizer_handed_on:
            return
        for event, scheduler in self.early_steps:
            linked = scheduler.facts.get("optimizers") or ()
            optimizer = linked[0].name if linked else "the optimizer"
            if _plateau(scheduler):
                effect = "its learning-rate cuts apply one step early"
            else:
                effect = "the schedule is one step ahead and its first learning rate is never used"
            self.report(
                "TG110",
                event.node,
                f"{scheduler.name}.step() runs before {optimizer}.step(): {effect}",
                evidence={"scheduler": scheduler.name, "optimizer": optimizer},
            )

    def on_forget(self, forgotten: set[Thing], ctx: TraceView) -> None:
        # Unseen code got the optimizer: it may have stepped it.
        optimizers = tuple(thing for thing in forgotten if thing.kind == "optimizer")
        # In a loop, like `train_one_epoch(model, optimizer, ...)`; not a base class's `__init__(optimizer)`.
        self.optimizer_handed_on = self.optimizer_handed_on or bool(optimizers and ctx.loops)
        for key in list(ctx.state.keys_about(KEY)) if optimizers else ():
            if _linked(key[1], optimizers):
                ctx.state.set(key, ctx.state.facts[key] | {"stepped"})
