"""TG305 regression-loss-on-class-labels: a regression loss given an integer (class label) target.
Reads only the target's dtype, so it costs no device synchronisation."""

from __future__ import annotations

from typing import Any

import torch

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LossCall

REGRESSION_LOSSES = frozenset({"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"})


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
