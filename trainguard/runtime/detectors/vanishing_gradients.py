"""TG109 vanishing-gradients: weight layers whose gradient RMS stays below a threshold for several
measurements in a row, read from the `measured` event; thresholds in runtime.thresholds."""

from __future__ import annotations

import math

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepMeasured


class VanishingGradients(Detector):
    code = "TG109"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        limits = session.config.thresholds
        self._rms, self._patience = limits.vanishing_rms, limits.vanishing_patience
        self._streak: dict[str, int] = {}
        self._reported = False

    def on_measured(self, event: StepMeasured) -> None:
        if self._reported or not event.layer_norms or not event.layer_sizes:
            return
        for name, norm in event.layer_norms.items():
            size = event.layer_sizes[name]
            # Weights only: a bias before BatchNorm has a zero gradient by construction.
            if not name.endswith("weight") or size < 2:
                continue
            tiny = math.isfinite(norm) and norm / math.sqrt(size) < self._rms
            self._streak[name] = self._streak.get(name, 0) + 1 if tiny else 0
        stuck = sorted(name for name, count in self._streak.items() if count >= self._patience)
        if stuck:
            self._reported = True
            self.report(
                f"{len(stuck)} layer(s) have had gradients of RMS < {self._rms:g} for {self._patience} "
                f"measurements in a row, so they barely learn: {', '.join(stuck[:5])}",
                event.location,
                evidence={"layers": stuck[:20], "rms_threshold": self._rms},
                step=event.step,
            )
