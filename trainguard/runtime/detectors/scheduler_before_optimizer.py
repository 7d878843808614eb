"""TG110 scheduler-before-optimizer: `lr_scheduler.step()` before its optimizer stepped."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import SchedulerStep


class SchedulerBeforeOptimizer(Detector):
    code = "TG110"

    def on_scheduler_step(self, event: SchedulerStep) -> None:
        if not event.optimizer_stepped:
            self.report(
                f"{type(event.scheduler).__name__}.step() was called before its optimizer stepped: "
                f"the first value of the learning-rate schedule is skipped and every later one shifted",
                event.location,
                evidence={"scheduler": type(event.scheduler).__name__},
            )
