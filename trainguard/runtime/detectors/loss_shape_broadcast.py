"""TG304 loss-shape-broadcast: a regression loss whose input and target shapes differ, so they
broadcast. Reads only shapes, so it costs no device synchronisation."""

from __future__ import annotations

import torch

from trainguard.runtime.detectors import Detector
from trainguard.runtime.detectors.regression_loss_on_class_labels import REGRESSION_LOSSES
from trainguard.runtime.events import LossCall


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
