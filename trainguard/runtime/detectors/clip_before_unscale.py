"""TG104 clip-before-unscale: clipping gradients that GradScaler has multiplied by its scale."""

from __future__ import annotations

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ClipCall


class ClipBeforeUnscale(Detector):
    code = "TG104"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._measured: set[tuple] = set()

    def on_clip(self, event: ClipCall) -> None:
        if not event.grads_scaled:
            return
        evidence = {}
        place = (event.location.path, event.location.line)
        if event.total_norm is not None and place not in self._measured:
            # One device read, the first time only: the norm the clip saw (the scaled one).
            self._measured.add(place)
            evidence["clipped_norm"] = round(float(event.total_norm), 4)
        self.report(
            f"{event.function} ran on GradScaler-scaled gradients (no scaler.unscale_ before it): "
            f"the threshold is compared with the norm times the loss scale, so clipping is wrong",
            event.location,
            evidence=evidence,
        )
