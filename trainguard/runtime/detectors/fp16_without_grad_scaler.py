"""TG601 fp16-without-grad-scaler: float16 training whose gradients are never loss-scaled."""

from __future__ import annotations

import torch

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class Fp16WithoutGradScaler(Detector):
    code = "TG601"

    def on_step_start(self, event: StepStart) -> None:
        window = self.session.window
        if any(call.via_scaler for call in window.backwards):
            return
        autocast = any(call.fp16_autocast and call.training and call.grad_enabled for call in window.forwards)
        sample = event.state.sample() if event.state.sample is not None else None
        half_params = sample is not None and sample.dtype == torch.float16
        if autocast or half_params:
            how = "under float16 autocast" if autocast else "with float16 parameters"
            self.report(
                f"the model was trained {how} without a GradScaler: small gradients underflow to zero "
                f"in float16 and those updates are silently lost",
                event.location,
                evidence={"autocast_fp16": autocast, "fp16_parameters": half_params},
                step=event.index,
            )
