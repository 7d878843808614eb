"""TG302 softmax-before-cross-entropy and TG303 sigmoid-before-bce-with-logits.

Both losses take logits and normalize internally; fed probabilities they squash them twice and
the gradients nearly vanish. Tensors carry what produced them (F.softmax, torch.softmax,
nn.Softmax, `x.softmax()`, through view/reshape/indexing), including a model whose `forward`
returns softmax(...) (a file class, or nn.Sequential ending in nn.Softmax). log_softmax into
cross_entropy is only redundant: reported as info.
"""

from __future__ import annotations

from trainguard.findings import Severity
from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Tensor, must_all
from trainguard.lint.vocabulary import LOSS_CLASSES, LOSS_FUNCTIONS


def _made_by(values: frozenset, tag: str) -> bool:
    return must_all(values, lambda value: isinstance(value, Tensor) and tag in value.tags)


class ProbabilitiesIntoLogitLosses(LintRule):
    """TG302/TG303, at the loss call."""

    codes = ("TG302", "TG303")
    triggers = tuple(frozenset((name,)) for name in (*LOSS_FUNCTIONS, *LOSS_CLASSES))

    def on_loss_call(self, event: ev.LossCall, ctx: TraceView) -> None:
        if event.family == "cross_entropy" and _made_by(event.prediction, "softmax"):
            self.report(
                "TG302",
                event.node,
                "cross_entropy receives softmax probabilities: it applies log_softmax itself, so the "
                "outputs are squashed twice and the gradients nearly vanish",
            )
        elif event.family == "cross_entropy" and _made_by(event.prediction, "log_softmax"):
            self.report(
                "TG302",
                event.node,
                "cross_entropy receives log_softmax output: harmless (log_softmax is idempotent) but "
                "redundant; use nll_loss on log-probabilities or pass the logits",
                severity=Severity.INFO,
            )
        elif event.family == "bce_with_logits" and _made_by(event.prediction, "sigmoid"):
            self.report(
                "TG303",
                event.node,
                "binary_cross_entropy_with_logits receives sigmoid probabilities: it applies sigmoid "
                "itself, so predictions are squashed twice and the loss barely moves",
            )
