"""TG302-TG305: what loss functions are fed. Checks read only shapes, dtypes and the autograd
node that produced the input, never tensor values, so they cost no device synchronisation."""

from __future__ import annotations

from typing import Any

import torch

from trainguard.findings import Severity
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LossCall

REGRESSION_LOSSES = frozenset({"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"})
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


class LossShapeBroadcast(Detector):
    code = "TG304"

    def on_loss(self, event: LossCall) -> None:
        target = event.target
        if event.name not in REGRESSION_LOSSES or not isinstance(target, torch.Tensor):
            return
        if event.input.shape != target.shape:
            self.report(
                f"{event.name} compared input {list(event.input.shape)} with target {list(target.shape)}: "
                f"they broadcast to {list(torch.broadcast_shapes(event.input.shape, target.shape))}, so every "
                f"prediction is compared with every target",
                event.location,
                evidence={"input_shape": list(event.input.shape), "target_shape": list(target.shape)},
            )


class RegressionLossOnClassLabels(Detector):
    code = "TG305"

    def on_loss(self, event: LossCall) -> None:
        target: Any = event.target
        if event.name in REGRESSION_LOSSES and isinstance(target, torch.Tensor) and _is_integer(target):
            self.report(
                f"{event.name} got an integer ({target.dtype}) target: class labels treated as numbers "
                f"make class 9 'further' from 0 than class 1 is",
                event.location,
                evidence={"target_dtype": str(target.dtype)},
            )


def _is_integer(tensor: torch.Tensor) -> bool:
    return not tensor.is_floating_point() and not tensor.is_complex() and tensor.dtype != torch.bool
