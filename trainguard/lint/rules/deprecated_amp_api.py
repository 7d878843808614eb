"""TG602 deprecated-amp-api: `torch.cuda.amp.autocast` / `GradScaler` (and the CPU ones) are
deprecated aliases of the `torch.amp` ones."""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView

DEPRECATED = {
    "torch.cuda.amp.autocast": 'torch.amp.autocast("cuda", ...)',
    "torch.cuda.amp.GradScaler": 'torch.amp.GradScaler("cuda", ...)',
    "torch.cpu.amp.autocast": 'torch.amp.autocast("cpu", ...)',
    "torch.cpu.amp.GradScaler": 'torch.amp.GradScaler("cpu", ...)',
    "torch.cuda.amp.custom_fwd": 'torch.amp.custom_fwd(device_type="cuda")',
    "torch.cuda.amp.custom_bwd": 'torch.amp.custom_bwd(device_type="cuda")',
}


class DeprecatedAmpApi(LintRule):
    """TG602 at the deprecated call."""

    codes = ("TG602",)
    triggers = tuple(frozenset((name.rsplit(".", 1)[-1],)) for name in DEPRECATED)

    def on_call(self, event: ev.Call, ctx: TraceView) -> None:
        if event.qualname in DEPRECATED:
            self.report(
                "TG602",
                event.node,
                f"{event.qualname} is deprecated: use {DEPRECATED[event.qualname]}",
                evidence={"api": event.qualname},
            )
