"""TG402 loss-not-decreasing: a torch loss function's value did not improve over the first
`loss_window` steps, read from the `measured` event; thresholds in runtime.thresholds."""

from __future__ import annotations

import math
import statistics

from trainguard.runtime.callsite import Location
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LossCall, LossesRead, OptimizerStateLoad, StepMeasured
from trainguard.runtime.measurements import finite


class LossNotDecreasing(Detector):
    code = "TG402"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        limits = session.config.thresholds
        self._window, self._improvement = limits.loss_window, limits.min_improvement
        self._losses: list[tuple[int, float]] = []
        self._judged = False
        self._step_sites: set[Location] = set()
        self._loss_function_trained = False

    def on_loss(self, event: LossCall) -> None:
        # Only a torch loss function's value is judged: a hand-written objective (the value
        # backward() was called on) may be a surrogate, like REINFORCE's, that is not meant to decrease.
        if event.output.grad_fn is not None and event.output.dim() == 0:
            self._loss_function_trained = True

    def on_optimizer_state_load(self, event: OptimizerStateLoad) -> None:
        # A resumed run: late in a schedule the loss may rightly improve by less than
        # `min_improvement` over `loss_window` steps, so "learns nothing" cannot be told apart.
        self._judged = True

    def on_losses_read(self, event: LossesRead) -> None:
        if self._judged or not self._loss_function_trained:
            return
        kept = [(step, loss) for step, loss in zip(event.step_indices, event.losses) if math.isfinite(loss)]
        if not kept:
            return
        self._step_sites.add(event.location)
        for step, loss in kept:
            self._losses.append((step, loss))
            if step >= self._window:
                self._judge(step, event.loss_location or event.location)
                return

    def on_measured(self, event: StepMeasured) -> None:
        if self._judged or not finite(event.loss) or not self._loss_function_trained:
            return
        self._losses.append((event.step, event.loss))
        self._step_sites.add(event.location)
        if event.step >= self._window:
            self._judge(event.step, event.loss_location or event.location)

    def _judge(self, step: int, location: Location) -> None:
        """Judged once, at the first measured step at or after `loss_window`."""
        self._judged = True
        if len(self._step_sites) > 1:
            return  # several optimizers (a GAN's two players): each one's loss may rise while the game is healthy
        first = [loss for at, loss in self._losses if at < 0.1 * self._window]
        last = [loss for at, loss in self._losses if at >= 0.8 * self._window]
        if len(first) < 2 or len(last) < 2:
            return
        # fmean: floats summed with fsum; `mean` goes through exact fractions (~0.5 M instructions at this judgement).
        start, end = statistics.fmean(first), statistics.fmean(last)
        if end > start - self._improvement * abs(start):
            self.report(
                f"the training loss did not improve over the first {self._window} steps: mean {start:.4g} "
                f"over the first 10 % of the steps, {end:.4g} over the last 20 %",
                location,
                evidence={"first_mean": round(start, 6), "last_mean": round(end, 6), "steps": self._window},
                step=step,
            )
