"""TG114 zero-grad-before-step: gradients cleared between the last backward and `optimizer.step()`.

Per optimizer the rule tracks "clean" (nothing accumulated since its last step or clearing),
"accumulated" (a backward since), and ("cleared", node, escaped) after a zero_grad that clears
all of its parameters while they certainly held accumulated gradients (an optimizer made
where the linter cannot see is tracked from its own first `zero_grad()` on). A step is the bug when
every path reaching it carries such a clearing: one `if` that discards a bad batch's gradients
joins with the path that kept them and stays silent. Hand-written clearing (`p.grad = None` in a
loop) may cover only some parameters and is not judged. A tensor handed to code the linter cannot
see after the clearing may have been backpropagated there: the step is not reported then.
"""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Thing, within

KEY = "TG114"


def clears_all(optimizer: Thing, target: Thing) -> bool:
    """Clearing `target` certainly clears every parameter `optimizer` holds."""
    if target.kind == "optimizer":
        return target is optimizer
    sources = optimizer.facts.get("sources")
    if target.kind != "model" or not sources:
        return False
    return all(module.known and within(module, target) for module, _ in sources)


def _cleared(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and value[0] == "cleared"


class ZeroGradBeforeStep(LintRule):
    """TG114, at the optimizer step; reported at the clearing call."""

    codes = ("TG114",)
    triggers = (frozenset(("step", "zero_grad")), frozenset(("step", "grad")))  # cleared by zero_grad() or .grad = None

    def on_created(self, event: ev.Created, ctx: TraceView) -> None:
        if event.thing.kind == "optimizer":
            ctx.state.set((KEY, event.thing), ("clean",))

    def on_backward(self, event: ev.Backward, ctx: TraceView) -> None:
        for key in list(ctx.state.keys_about(KEY)):
            ctx.state.set(key, ("accumulated",))

    def on_zero_grad(self, event: ev.ZeroGrad, ctx: TraceView) -> None:
        for target in event.targets or ():
            if target.kind == "optimizer" and (KEY, target) not in ctx.state.facts:
                # An optimizer made where the linter cannot see (a parameter named `optimizer`):
                # tracked from its first clearing on, so a loop's second pass is judged.
                ctx.state.set((KEY, target), ("clean",))
        for key in list(ctx.state.keys_about(KEY)):
            optimizer = key[1]
            if event.targets is None or not any(clears_all(optimizer, target) for target in event.targets):
                continue  # some parameters, or maybe none of this optimizer's
            if ctx.state.must(key, "accumulated"):
                ctx.state.set(key, (("cleared", event.node, len(ctx.escaped_origins)),))
            else:
                ctx.state.set(key, ("clean",))

    def on_optimizer_step(self, event: ev.OptimizerStep, ctx: TraceView) -> None:
        for optimizer in event.optimizers:
            key = (KEY, optimizer)
            values = ctx.state.get(key)
            if values and all(_cleared(value) for value in values):
                for _, node, escaped in sorted(values, key=lambda value: getattr(value[1], "lineno", 0)):
                    if len(ctx.escaped_origins) == escaped:
                        self.report(
                            "TG114",
                            node,
                            f"this call clears {optimizer.name}'s gradients after backward() and before "
                            f"{optimizer.name}.step(): the step applies no gradient",
                            evidence={"optimizer": optimizer.name, "step_line": event.node.lineno},
                        )
            if key in ctx.state.facts:
                ctx.state.set(key, ("clean",))
