"""TG112 accumulation-token-mean: token losses mean-reduced per micro-batch over different counts of counted tokens, then accumulated into one step."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class AccumulationTokenMean(Detector):
    """TG112: TODO say at which event it decides, and from what."""

    code = "TG112"

    def on_step_start(self, event: StepStart) -> None:
        # Subscribe to the events the rule needs (trainguard.runtime.events.EVENTS) and call
        # self.report(message, location, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("TG112 detector")
