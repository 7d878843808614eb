"""TG113 clip-after-step: gradients clipped after the optimizer step that already used them.

Per optimizer the rule tracks "backward" (a backward pass since its last step) and ("stepped",
escaped) after its step. A clip is the bug when it clips parameters of an optimizer that, on
every path, stepped with no backward pass since: a clip inside a closure or between backward and
step follows a backward; a clip of a probe's parameters between the model's step and the probe's
own is about an optimizer that has not stepped; a clip with an infinite limit only measures the
norm. Clipped parameters that the linter cannot trace to a model are not judged, nor a clip after
a tensor was handed to code the linter cannot see (it may have backpropagated there).
"""

from __future__ import annotations

import ast

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import related

KEY = "TG113"


def overlap(clipped: frozenset, held: frozenset) -> bool:
    """Some clipped parameter is certainly one the optimizer holds."""
    for module, path in clipped:
        for other, other_path in held:
            if module is other and (path[: len(other_path)] == other_path or other_path[: len(path)] == path):
                return True
            if module is not other and not path and not other_path and related(module, other):
                return True
    return False


def _infinite_limit(node: ast.Call) -> bool:
    """`clip_grad_norm_(params, float("inf"))` / `math.inf`: a norm measured, nothing clipped."""
    limit = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg in ("max_norm", "clip_value")), None)
    if limit is None:
        return False
    text = ast.unparse(limit).replace(" ", "").lower()
    return text in ('float("inf")', "float('inf')", "math.inf", "torch.inf", "np.inf", "numpy.inf")


class ClipAfterStep(LintRule):
    """TG113, at the clip."""

    codes = ("TG113",)
    triggers = tuple(frozenset(("step", name)) for name in ("clip_grad_norm_", "clip_grad_value_", "clip_grad_norm"))

    def on_created(self, event: ev.Created, ctx: TraceView) -> None:
        if event.thing.kind == "optimizer":
            ctx.state.set((KEY, event.thing), ("fresh",))

    def on_backward(self, event: ev.Backward, ctx: TraceView) -> None:
        for key in list(ctx.state.keys_about(KEY)):
            ctx.state.set(key, ("backward",))

    def on_optimizer_step(self, event: ev.OptimizerStep, ctx: TraceView) -> None:
        for optimizer in event.optimizers:
            if (KEY, optimizer) in ctx.state.facts:
                ctx.state.set((KEY, optimizer), (("stepped", len(ctx.escaped_origins)),))

    def on_clip_grad(self, event: ev.ClipGrad, ctx: TraceView) -> None:
        if not event.sources or _infinite_limit(event.node):
            return
        for key in list(ctx.state.keys_about(KEY)):
            optimizer = key[1]
            held = optimizer.facts.get("sources")
            if not held or not overlap(event.sources, held):
                continue
            if ctx.state.get(key) == frozenset({("stepped", len(ctx.escaped_origins))}):
                function = event.qualname.rsplit(".", 1)[-1]
                self.report(
                    "TG113",
                    event.node,
                    f"{function} runs after {optimizer.name}.step() and before the next backward(): the step "
                    f"already applied the unclipped gradients, so clipping changes nothing",
                    evidence={"optimizer": optimizer.name},
                )
                return
