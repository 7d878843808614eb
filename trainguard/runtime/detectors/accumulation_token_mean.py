"""TG112 accumulation-token-mean: token losses mean-reduced per micro-batch over different counts
of counted tokens, then accumulated into one optimizer step: the tokens are weighted unequally."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import BackwardCall, LossCall, StepStart

if TYPE_CHECKING:
    from trainguard.runtime.context import DetectorContext

TOKEN_LOSSES = frozenset({"cross_entropy", "nll_loss"})
# Micro-batches whose backward() values are the same multiple of their mean losses (to this
# relative tolerance) were scaled alike (raw, or / N); a reweighting by token counts is not.
SAME_SCALE = 1e-3


@dataclass(frozen=True)
class _TokenMean:
    """One mean-reduced token loss: its value (detached) and its targets, counted only at a step
    that accumulated several (nothing is computed or read per micro-batch)."""

    loss: torch.Tensor
    target: torch.Tensor
    ignore_index: int


class AccumulationTokenMean(Detector):
    """TG112: pairs each backward() of a sampled step with the one mean token loss computed since
    the previous backward, and decides at the optimizer step from their counted tokens and scales
    (one host read per sampled step that accumulated >= 2 such micro-batches)."""

    code = "TG112"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._losses: list[_TokenMean | None] = []  # since the last backward; None: another loss
        self._micro_batches: list[tuple[_TokenMean, torch.Tensor] | None] = []

    def on_loss(self, event: LossCall) -> None:
        if not self.session.detailed or event.output.grad_fn is None:
            return  # evaluation losses are not accumulated
        target = event.target
        if (
            event.name in TOKEN_LOSSES and event.reduction == "mean" and event.weight is None
            and isinstance(target, torch.Tensor) and not target.is_floating_point() and event.output.dim() == 0
        ):
            self._losses.append(_TokenMean(event.output.detach(), target, event.ignore_index))  # type: ignore[arg-type]
        else:
            self._losses.append(None)

    def on_backward(self, event: BackwardCall) -> None:
        if not self.session.detailed:
            return
        losses, self._losses = self._losses, []
        paired = len(losses) == 1 and losses[0] is not None and event.value is not None
        self._micro_batches.append((losses[0], event.value) if paired else None)  # type: ignore[arg-type]

    def on_step_start(self, event: StepStart) -> None:
        micro_batches, self._micro_batches, self._losses = self._micro_batches, [], []
        if not self.session.detailed or len(micro_batches) < 2 or event.state.cleared is False:
            return
        if any(micro is None for micro in micro_batches) or not self._one_forward_each(len(micro_batches)):
            return
        with torch.no_grad():
            rows = []
            for micro, value in micro_batches:  # type: ignore[misc]
                ignored = micro.target == micro.ignore_index
                counted, masked = (~ignored).sum(), ignored.any()
                rows.append(torch.stack([micro.loss.float(), value.float(), counted.float(), masked.float()]))
            numbers = torch.stack(rows).tolist()  # one host read
        losses, values, counts, masked = (list(column) for column in zip(*numbers))
        if not any(masked) or min(counts) <= 0 or 0.0 in losses:
            return  # no token was ignored: not padded token losses (e.g. a smaller last batch)
        if max(counts) / min(counts) < self.session.config.thresholds.token_count_ratio:
            return
        scales = [value / loss for value, loss in zip(values, losses)]
        if max(scales) - min(scales) > SAME_SCALE * max(abs(scale) for scale in scales):
            return  # weighted per micro-batch (e.g. by its token count): deliberate
        counts = [int(count) for count in counts]
        self.report(
            f"{len(micro_batches)} micro-batches were accumulated into one optimizer step, each a "
            f"mean token loss over a different number of counted tokens ({min(counts)} to {max(counts)}): "
            f"a token of the smallest micro-batch weighs {max(counts) / min(counts):.2f}x one of the largest",
            event.location,
            evidence={"micro_batches": len(micro_batches), "counted_tokens": counts},
            step=event.index,
        )

    def _one_forward_each(self, micro_batches: int) -> bool:
        """Whether one model was called (with gradients) at least once per micro-batch: several
        losses of one batch (tasks, heads) backpropagated separately are weighted on purpose."""
        calls = Counter(id(call.root) for call in self.session.window.forwards if call.grad_enabled)
        return max(calls.values(), default=0) >= micro_batches
