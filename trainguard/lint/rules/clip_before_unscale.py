"""TG104 clip-before-unscale: clipping gradients that a GradScaler has scaled and not yet unscaled."""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import tensors

KEY = "TG104"


class ClipBeforeUnscale(LintRule):
    """TG104: each scaler is "scaled" after a backward through it, "unscaled" after unscale_/update."""

    codes = ("TG104",)
    triggers = tuple(frozenset((name,)) for name in ("clip_grad_norm_", "clip_grad_value_", "clip_grad_norm"))

    def on_backward(self, event: ev.Backward, ctx: TraceView) -> None:
        found = tensors(event.loss)
        if not found or len(found) != len(event.loss):
            return
        scalers = set.intersection(*({tag[1] for tag in t.tags if isinstance(tag, tuple) and tag[0] == "scaled_by"} for t in found))
        for scaler in scalers:
            ctx.state.set((KEY, scaler), ("scaled",))

    def on_scaler_unscale(self, event: ev.ScalerUnscale, ctx: TraceView) -> None:
        for scaler in event.scalers:
            ctx.state.set((KEY, scaler), ("unscaled",))

    on_scaler_update = on_scaler_unscale

    def on_clip_grad(self, event: ev.ClipGrad, ctx: TraceView) -> None:
        for key in ctx.state.keys_about(KEY):
            if ctx.state.must(key, "scaled"):
                self.report(
                    "TG104",
                    event.node,
                    f"{event.qualname.rsplit('.', 1)[-1]} clips gradients still multiplied by {key[1].name}'s loss "
                    f"scale: the threshold is compared with scaled norms, so clipping fires on almost every step",
                    evidence={"scaler": key[1].name},
                )
                return
