"""TG207 frozen-batchnorm-updating: BatchNorm layers whose parameters are frozen still update their running statistics (left in train mode)."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class FrozenBatchnormUpdating(Detector):
    """TG207: TODO say at which event it decides, and from what."""

    code = "TG207"

    def on_step_start(self, event: StepStart) -> None:
        # Subscribe to the events the rule needs (trainguard.runtime.events.EVENTS) and call
        # self.report(message, location, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("TG207 detector")
