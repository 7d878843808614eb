"""TG308 nll-loss-without-log-softmax, static face: softmax probabilities fed to nll_loss / NLLLoss.

The flow is the one TG302 follows (F.softmax, torch.softmax, nn.Softmax, `x.softmax()`, through
views, and a model whose `forward` returns softmax(...)). `torch.log(probs)` / `probs.log()`
makes log-probabilities and is silent. Raw scores cannot be told from log-probabilities in the
source (both are just "a tensor"): only the runtime guard sees them, from a negative loss.
"""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Tensor, must_all


class NllLossWithoutLogSoftmax(LintRule):
    """TG308, at the nll_loss / NLLLoss call whose input is certainly softmax output."""

    codes = ("TG308",)
    triggers = (frozenset(("nll_loss",)), frozenset(("NLLLoss",)))

    def on_loss_call(self, event: ev.LossCall, ctx: TraceView) -> None:
        if event.family == "nll" and must_all(event.prediction, lambda value: isinstance(value, Tensor) and "softmax" in value.tags):
            self.report(
                "TG308",
                event.node,
                "nll_loss receives softmax probabilities, not log-probabilities: it minimises -p instead "
                "of -log p, so confident mistakes cost almost nothing",
            )
