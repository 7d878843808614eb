"""TG306 non-finite-loss, TG503 non-finite-inputs, TG107 non-finite-gradients: NaN/Inf in the
loss, in a model's input batch, or in the gradients, read from the `measured` event (see
runtime.measurements)."""

from __future__ import annotations

import math

import torch

from trainguard.runtime.callsite import Location
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LossesRead, StepMeasured
from trainguard.runtime.measurements import all_finite, first_nonfinite


class NonFiniteLoss(Detector):
    code = "TG306"

    def on_losses_read(self, event: LossesRead) -> None:
        # Steady-state steps' losses: the step a loss went non-finite at is known exactly.
        if all(map(math.isfinite, event.losses)):
            return
        for step, loss in zip(event.step_indices, event.losses):
            if not math.isfinite(loss):
                self._report(step, loss, event.loss_location or event.location)

    def on_measured(self, event: StepMeasured) -> None:
        if event.loss is not None and not math.isfinite(event.loss):
            self._report(event.step, event.loss, event.loss_location or event.location)

    def _report(self, step: int, loss: float, location: Location) -> None:
        named = []
        for root in list(self.session.roots.values()):
            named.extend(root.named_parameters())
        evidence = {
            "loss": str(loss),
            "first_nonfinite_parameter": first_nonfinite([(n, p.detach()) for n, p in named]),
            "first_nonfinite_gradient": first_nonfinite([(n, p.grad) for n, p in named if p.grad is not None]),
        }
        self.report(
            f"the training loss is {loss} at step {step}: the next optimizer step would write NaN/Inf into the weights",
            location,
            evidence=evidence,
            step=step,
        )


class NonFiniteInputs(Detector):
    code = "TG503"

    def on_measured(self, event: StepMeasured) -> None:
        # Inputs are read when the loss went non-finite (the likely cause) and in detailed steps;
        # a steady-state step's loss (no norms: read late) has no inputs left to read.
        if event.layer_norms is None or not (self.session.detailed or (event.loss is not None and not math.isfinite(event.loss))):
            return
        for call in self.session.window.forwards:
            for ref in call.inputs:
                tensor = ref()
                if tensor is not None and not all_finite(tensor):
                    bad = int((~torch.isfinite(tensor)).sum())
                    self.report(
                        f"an input batch of {call.root.name} holds {bad} NaN/Inf value(s) out of {tensor.numel()}",
                        call.location,
                        evidence={"nonfinite_values": bad, "shape": list(tensor.shape)},
                        step=event.step,
                    )
                    return


class NonFiniteGradients(Detector):
    code = "TG107"

    def on_measured(self, event: StepMeasured) -> None:
        if not event.layer_norms or (event.loss is not None and not math.isfinite(event.loss)):
            return  # a non-finite loss is reported as such (TG306), with the first bad gradient
        bad = [name for name, norm in event.layer_norms.items() if not math.isfinite(norm)]
        if bad:
            loss = "while no loss value was seen" if event.loss is None else f"while the loss is finite ({event.loss:.4g})"
            self.report(
                f"{len(bad)} gradient(s) hold NaN/Inf at step {event.step} {loss}: {', '.join(bad[:5])}",
                event.location,
                evidence={"parameters": bad[:20]},
                step=event.step,
            )
