"""TG601 fp16-without-grad-scaler: a model trained (its output reaches backward()) under float16
autocast, or with float16 parameters (`model.half()`), and no enabled GradScaler: small gradients
underflow to zero in float16. bfloat16 needs no scaler. A scaler made where the linter cannot see
it (GradScaler is named in the file but not created in this code path) keeps the rule silent.
Reported at the optimizer step that follows.
"""

from __future__ import annotations

from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView

FP16 = frozenset(("float16",))


class Fp16WithoutGradScaler(LintRule):
    """TG601 at the optimizer step after a float16 forward."""

    codes = ("TG601",)
    triggers = (frozenset(("step", "backward")),)  # a backpropagated forward, then a step

    def end_trace(self, ctx: TraceView) -> None:
        """Report the first optimizer step after a backpropagated float16 forward, if no scaler is enabled."""
        scalers = [entry.event.thing for entry in ctx.events("created") if entry.event.thing.kind == "scaler"]
        if any(scaler.facts.get("enabled") is not False for scaler in scalers):
            return
        if not scalers and {"GradScaler", "ShardedGradScaler"} & ctx.script.attribute_names:
            return
        backpropagated = ctx.backpropagated()
        fp16_forward = None
        for entry in ctx.log:
            float16 = entry.name == "forward" and (entry.event.autocast == FP16 or entry.event.model.facts.get("float16"))
            if float16 and entry.event.root and entry.event.node in backpropagated:
                fp16_forward = fp16_forward or entry.event
            elif entry.name == "optimizer_step" and fp16_forward is not None:
                self.report(
                    "TG601",
                    entry.event.node,
                    f"the model is trained in float16 (forward at line {fp16_forward.node.lineno}) without an "
                    f"enabled GradScaler: small gradients underflow to zero",
                    evidence={"forward_line": fp16_forward.node.lineno},
                )
                return
