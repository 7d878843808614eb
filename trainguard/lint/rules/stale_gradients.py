"""TG101 stale-gradients: an optimizer step whose gradients were never cleared since its last step.

Per optimizer the rule tracks what `.grad` holds: "fresh" (never stepped), "clean" (cleared
since the last step), "accumulated" (backward since clearing), "stepped" (a step used them and
nobody cleared them), "stale" (a backward added to gradients a step already used). A step is
the bug when, on every path where it is not the optimizer's first step, it sees "stale"
gradients: in the loop's second pass for a loop without any zero_grad, even when the step sits
under an `if` that the first pass may have skipped.
"""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Thing, related

KEY = "TG101"
AFTER_BACKWARD = {"clean": "accumulated", "accumulated": "accumulated", "stepped": "stale", "stale": "stale", "fresh": "fresh"}


def covers(optimizer: Thing, target: Thing) -> bool:
    """Clearing `target` (an optimizer or a model) may clear this optimizer's gradients."""
    if target.kind == "optimizer":
        return target is optimizer or not target.known or not optimizer.known
    sources = optimizer.facts.get("sources")
    if sources is None or target.kind != "model":
        return True
    return any(related(module, target) or not module.known for module, _ in sources)


class StaleGradients(LintRule):
    """TG101, at the optimizer step."""

    codes = ("TG101",)
    triggers = (frozenset(("step", "backward")),)  # stale gradients need a backward after a step

    def on_created(self, event: ev.Created, ctx: TraceView) -> None:
        if event.thing.kind == "optimizer":
            ctx.state.set((KEY, event.thing), ("fresh",))

    def on_backward(self, event: ev.Backward, ctx: TraceView) -> None:
        for key in list(ctx.state.keys_about(KEY)):
            ctx.state.set(key, (AFTER_BACKWARD.get(value, value) for value in ctx.state.facts[key]))

    def on_optimizer_step(self, event: ev.OptimizerStep, ctx: TraceView) -> None:
        for optimizer in event.optimizers:
            if ctx.state.get((KEY, optimizer)) - {"fresh"} == {"stale"}:
                self.report(
                    "TG101",
                    event.node,
                    f"{optimizer.name}.step() uses gradients accumulated since earlier steps: nothing clears "
                    f".grad between its steps, so every step adds all previous steps' gradients again",
                    evidence={"optimizer": optimizer.name, "optimizer_line": getattr(optimizer.node, "lineno", None)},
                )
            ctx.state.set((KEY, optimizer), ("stepped",))

    def on_zero_grad(self, event: ev.ZeroGrad, ctx: TraceView) -> None:
        for key in list(ctx.state.keys_about(KEY)):
            if event.targets is None or any(covers(key[1], target) for target in event.targets):
                ctx.state.set(key, ("clean",))

    def on_forget(self, forgotten: set[Thing], ctx: TraceView) -> None:
        # Unseen code got a model: it may have called model.zero_grad().
        models = [thing for thing in forgotten if thing.kind == "model"]
        for key in list(ctx.state.keys_about(KEY)) if models else ():
            if any(covers(key[1], model) for model in models):
                ctx.state.set(key, ctx.state.facts[key] | {"clean"})
