"""TG703 state-dict-not-loaded: `load_state_dict(strict=False)` that matched few or none of the keys (weights silently not loaded)."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class StateDictNotLoaded(Detector):
    """TG703: TODO say at which event it decides, and from what."""

    code = "TG703"

    def on_step_start(self, event: StepStart) -> None:
        # Subscribe to the events the rule needs (trainguard.runtime.events.EVENTS) and call
        # self.report(message, location, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("TG703 detector")
