"""TG102 accumulation-loss-not-scaled: micro-batch losses summed into one step without `/ N`."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class AccumulationLossNotScaled(Detector):
    code = "TG102"

    def on_step_start(self, event: StepStart) -> None:
        window = self.session.window
        backwards = window.backwards
        micro_batches = len(backwards)
        # Accumulation means several loader batches per step; several losses of one batch
        # (e.g. a GAN discriminator's real and fake terms) are a deliberate sum.
        if event.state.cleared is False or window.batches < 2 or micro_batches < 2:
            return
        if not all(call.raw_loss is not None and call.raw_loss[1] == "mean" for call in backwards):
            return
        loss_name = backwards[0].raw_loss[0]  # type: ignore[index]
        self.report(
            f"{micro_batches} micro-batches were accumulated into one optimizer step and each "
            f"backward() ran on the raw mean {loss_name} loss: the gradient is {micro_batches}x the "
            f"mean over the window",
            event.location,
            evidence={"micro_batches": micro_batches, "loader_batches": window.batches, "loss": loss_name},
            step=event.index,
        )
