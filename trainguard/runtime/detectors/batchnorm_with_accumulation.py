"""TG103 batchnorm-with-accumulation: BatchNorm statistics taken per micro-batch."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class BatchNormWithAccumulation(Detector):
    code = "TG103"

    def on_step_start(self, event: StepStart) -> None:
        window = self.session.window
        if window.batches < 2 or len(window.backwards) < 2:
            return
        layers = sorted({name for call in window.forwards if call.training for name in call.root.batchnorms_training()})
        if layers:
            self.report(
                f"{len(window.backwards)} micro-batches were accumulated into one step while "
                f"{len(layers)} BatchNorm layer(s) were in train mode: their statistics and running "
                f"averages come from each small micro-batch, not from the effective batch",
                event.location,
                evidence={"micro_batches": len(window.backwards), "batchnorm_layers": layers[:10]},
                step=event.index,
            )
