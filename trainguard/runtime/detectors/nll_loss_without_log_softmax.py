"""TG308 nll-loss-without-log-softmax: probabilities or raw scores fed to `nll_loss` / `NLLLoss`.

`nll_loss` only picks `-input[target]`: it is a negative log-likelihood only when its input holds
log-probabilities. A softmax output is seen at once from its autograd node (no device read). Any
other input is judged on sampled steps only, from one read of four numbers per call site and step:
log-probabilities are never above 0, so their loss is never negative; a negative loss means the
input was not log-probabilities (rows in [0, 1] summing to 1 are probabilities, anything else raw
scores). A `log_softmax` output is never read.
"""

from __future__ import annotations

import torch

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.detectors.probabilities_into_logit_losses import producer
from trainguard.runtime.events import LossCall

# A loss this far below 0 cannot come from log-probabilities, whatever the rounding.
_NEGATIVE = -1e-6
# Probabilities: values in [0, 1] whose rows sum to 1 within this.
_ROW_SUM_TOLERANCE = 1e-3


class NllLossWithoutLogSoftmax(Detector):
    """TG308, at the nll_loss call: from the input's autograd node, else (sampled steps) its values."""

    code = "TG308"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        # (path, line) -> the step its values were last read at: one read per call site and step.
        self._read_at: dict[tuple[str | None, int | None], int] = {}

    def on_loss(self, event: LossCall) -> None:
        if event.name != "nll_loss":
            return
        made_by = producer(event.input)
        if made_by == "SoftmaxBackward0":
            self.report(
                "nll_loss received softmax probabilities instead of log-probabilities: it minimises -p "
                "(bounded in [-1, 0]) instead of -log p, so confident mistakes cost almost nothing",
                event.location,
                evidence={"input_produced_by": made_by},
            )
            return
        if made_by == "LogSoftmaxBackward0" or not self.session.detailed:
            return
        place = (event.location.path, event.location.line)
        if self._read_at.get(place) == self.session.step:
            return
        self._read_at[place] = self.session.step
        self._judge_values(event)

    def _judge_values(self, event: LossCall) -> None:
        scores, loss = event.input.detach(), event.output.detach()
        if scores.numel() == 0 or loss.numel() == 0 or not scores.is_floating_point():
            return
        class_dim = 1 if scores.dim() > 1 else 0
        row_error = (scores.sum(dim=class_dim) - 1).abs().max()
        lowest_loss, lowest, highest, row_error_value = torch.stack(
            [loss.min().float(), scores.min().float(), scores.max().float(), row_error.float()]
        ).tolist()  # one device read
        if not lowest_loss < _NEGATIVE:  # also False for NaN: not this rule's business
            return
        evidence = {"loss": lowest_loss, "input_min": lowest, "input_max": highest}
        if lowest >= 0 and highest <= 1 and row_error_value <= _ROW_SUM_TOLERANCE:
            message = (
                f"nll_loss received probabilities (values in [0, 1], rows summing to 1) instead of "
                f"log-probabilities: the loss is {lowest_loss:.4g}, -p rather than -log p"
            )
        else:
            message = (
                f"nll_loss received raw scores, not log-probabilities (values up to {highest:.4g}): the "
                f"loss is negative ({lowest_loss:.4g}) and keeps falling as scores grow, without learning"
            )
        self.report(message, event.location, evidence=evidence)
