"""TG107 non-finite-gradients, TG108 exploding-gradients, TG109 vanishing-gradients,
TG306 non-finite-loss, TG402 loss-not-decreasing, TG503 non-finite-inputs.

All read the `measured` event (see runtime.measurements); thresholds in runtime.thresholds.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

import torch


from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepMeasured
from trainguard.runtime.measurements import finite, first_nonfinite


class NonFiniteLoss(Detector):
    code = "TG306"

    def on_measured(self, event: StepMeasured) -> None:
        if event.loss is None or math.isfinite(event.loss):
            return
        named = []
        for root in list(self.session.roots.values()):
            named.extend(root.named_parameters())
        evidence = {
            "loss": str(event.loss),
            "first_nonfinite_parameter": first_nonfinite([(n, p.detach()) for n, p in named]),
            "first_nonfinite_gradient": first_nonfinite([(n, p.grad) for n, p in named if p.grad is not None]),
        }
        self.report(
            f"the training loss is {event.loss} at step {event.step}: the next optimizer step would write "
            f"NaN/Inf into the weights",
            event.loss_location or event.location,
            evidence=evidence,
            step=event.step,
        )


class NonFiniteInputs(Detector):
    code = "TG503"

    def on_measured(self, event: StepMeasured) -> None:
        # Inputs are read when the loss went non-finite (the likely cause) and in detailed windows.
        if not (self.session.detailed or (event.loss is not None and not math.isfinite(event.loss))):
            return
        for call in self.session.window.forwards:
            for ref in call.inputs:
                tensor = ref()
                if tensor is not None and not bool(torch.isfinite(tensor).all()):
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
            self.report(
                f"{len(bad)} gradient(s) hold NaN/Inf at step {event.step} while the loss is finite: {', '.join(bad[:5])}",
                event.location,
                evidence={"parameters": bad[:20]},
                step=event.step,
            )


class ExplodingGradients(Detector):
    code = "TG108"

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(session)
        limits = session.config.thresholds
        self._limit = limits.exploding_norm
        self._factor = limits.spike_factor
        self._history: deque[float] = deque(maxlen=limits.spike_history)

    def on_measured(self, event: StepMeasured) -> None:
        norm = event.grad_norm
        if not finite(norm):
            return
        median = statistics.median(self._history) if len(self._history) >= 10 else None
        self._history.append(norm)  # type: ignore[arg-type]
        if norm > self._limit:  # type: ignore[operator]
            why = f"above the alert threshold {self._limit:g}"
        elif median is not None and median > 0 and norm > self._factor * median:  # type: ignore[operator]
            why = f"{norm / median:.0f}x its running median {median:.3g}"  # type: ignore[operator]
        else:
            return
        self.report(
            f"the total gradient norm is {norm:.4g} at step {event.step}, {why}",
            event.location,
            evidence={"grad_norm": round(norm, 6), "threshold": self._limit, "running_median": median},  # type: ignore[arg-type]
            step=event.step,
        )


class VanishingGradients(Detector):
    code = "TG109"

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
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


class LossNotDecreasing(Detector):
    code = "TG402"

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(session)
        limits = session.config.thresholds
        self._window, self._improvement = limits.loss_window, limits.min_improvement
        self._losses: list[tuple[int, float]] = []
        self._judged = False

    def on_measured(self, event: StepMeasured) -> None:
        if self._judged or not finite(event.loss):
            return
        self._losses.append((event.step, event.loss))  # type: ignore[arg-type]
        if event.step < self._window:
            return
        self._judged = True
        first = [loss for step, loss in self._losses if step < 0.1 * self._window]
        last = [loss for step, loss in self._losses if step >= 0.8 * self._window]
        if len(first) < 2 or len(last) < 2:
            return
        start, end = statistics.mean(first), statistics.mean(last)
        if end > start - self._improvement * abs(start):
            self.report(
                f"the training loss did not improve over the first {self._window} steps: mean {start:.4g} "
                f"over the first 10 % of the steps, {end:.4g} over the last 20 %",
                event.loss_location or event.location,
                evidence={"first_mean": round(start, 6), "last_mean": round(end, 6), "steps": self._window},
                step=event.step,
            )


