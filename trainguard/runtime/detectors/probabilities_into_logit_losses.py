"""TG302 softmax-before-cross-entropy and TG303 sigmoid-before-bce-with-logits: a loss that applies
log_softmax / sigmoid itself fed probabilities. The checks read only the autograd node that
produced the input, never tensor values, so they cost no device synchronisation."""

from __future__ import annotations

import torch

from trainguard.findings import Severity
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LossCall

# Nodes that pass values through unchanged in meaning: look past them for the producer.
_PASS_THROUGH = frozenset({
    "ViewBackward0", "ReshapeAliasBackward0", "UnsafeViewBackward0", "SqueezeBackward0",
    "SqueezeBackward1", "SqueezeBackward2", "UnsqueezeBackward0", "PermuteBackward0",
    "TransposeBackward0", "TransposeBackward1", "CloneBackward0", "ToCopyBackward0",
    "SliceBackward0", "SelectBackward0", "IndexBackward0", "ExpandBackward0",
})
_MAX_HOPS = 8


def producer(tensor: torch.Tensor) -> str | None:
    """Name of the autograd node that computed `tensor`, looking through views and casts."""
    node = tensor.grad_fn
    for _ in range(_MAX_HOPS):
        if node is None:
            return None
        name = type(node).__name__
        if name not in _PASS_THROUGH:
            return name
        node = node.next_functions[0][0] if node.next_functions else None
    return None


class SoftmaxBeforeCrossEntropy(Detector):
    code = "TG302"

    def on_loss(self, event: LossCall) -> None:
        if event.name != "cross_entropy":
            return
        made_by = producer(event.input)
        if made_by == "SoftmaxBackward0":
            self.report(
                "cross_entropy received softmax probabilities instead of logits: it applies "
                "log_softmax again, squashing the gradients (training stalls, loss barely moves)",
                event.location,
                evidence={"input_produced_by": made_by, "input_shape": list(event.input.shape)},
            )
        elif made_by == "LogSoftmaxBackward0":
            self.report(
                "cross_entropy received log_softmax output: it applies log_softmax itself; the "
                "result is the same but the extra log_softmax is wasted work",
                event.location,
                evidence={"input_produced_by": made_by},
                severity=Severity.INFO,
            )


class SigmoidBeforeBCEWithLogits(Detector):
    code = "TG303"

    def on_loss(self, event: LossCall) -> None:
        if event.name == "binary_cross_entropy_with_logits" and producer(event.input) == "SigmoidBackward0":
            self.report(
                "binary_cross_entropy_with_logits received sigmoid probabilities: the sigmoid is applied "
                "twice, predictions are squeezed into (0.5, 0.73) and gradients vanish",
                event.location,
                evidence={"input_produced_by": "SigmoidBackward0"},
            )
