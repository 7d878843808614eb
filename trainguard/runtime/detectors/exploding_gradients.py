"""TG108 exploding-gradients: a gradient norm spike the loss confirms, a run-away rise of norm and
loss, or sustained growth, judged per optimizer from the `measured` event (see
runtime.measurements); thresholds in runtime.thresholds."""

from __future__ import annotations

import math
import statistics
from collections import deque

import torch

from trainguard.runtime.callsite import Location
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ClipCall, LossesRead, StepMeasured, StepStart
from trainguard.runtime.measurements import finite

_RECENT = 10  # measurements in the rolling medians that TG108's growth test starts from
_CONFIRM_WITHIN = 3  # measurements after a spike in which the loss may confirm it
_RUNAWAY = 3  # measurements in which norm and loss both rising every time is a blow-up
_SPIKE_DEVIATIONS = 6.0  # a spike is also this many robust deviations above the median log norm


class _NormHistory:
    """One optimizer's gradient norms and losses, as TG108 judges them (a GAN's two optimizers
    have norms on different scales, so each has its own history)."""

    def __init__(self, length: int) -> None:
        self.measured = 0
        self.log_norms: deque[float] = deque(maxlen=length)
        self.losses: deque[float] = deque(maxlen=length)
        self.lowest_norm_median = math.inf
        self.lowest_loss_median = math.inf
        # The last few (norm, loss) pairs: a run blowing up in its first steps has no history yet.
        self.last_pairs: deque[tuple[float, float]] = deque(maxlen=_RUNAWAY)
        self.highest_loss_before = -math.inf  # the highest loss before the last pairs
        # A spike waiting for the loss to confirm it: (step, norm, median norm, loss median before it, measurements left).
        self.pending: tuple[int, float, float, float | None, int] | None = None

    def recent_median(self, values: deque[float]) -> float | None:
        return statistics.median(list(values)[-_RECENT:]) if len(values) >= _RECENT else None

    def loss_median(self) -> float | None:
        return statistics.median(self.losses) if len(self.losses) >= _RECENT else None


def loss_jumped(loss: float | None, before: float | None) -> bool:
    """The loss confirms a gradient spike: it went non-finite, or rose well above its median
    (by half its magnitude: relative, so a summed loss in the thousands and a mean loss near 1
    are judged alike)."""
    if loss is None:
        return False
    if not math.isfinite(loss):
        return True
    return before is not None and loss > before + 0.5 * abs(before)


class ExplodingGradients(Detector):
    code = "TG108"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._limits = session.config.thresholds
        self._histories: dict[Location, _NormHistory] = {}
        self._pre_clip_norm: torch.Tensor | None = None
        self._clipped = False
        self._reported: set[Location] = set()

    def on_clip(self, event: ClipCall) -> None:
        # The measured norm is the clipped one; clip_grad_norm_ returns the norm before clipping,
        # which is what the gradients really were (read only when the step is judged).
        self._clipped, self._pre_clip_norm = True, event.total_norm

    def on_step_start(self, event: StepStart) -> None:
        # Runs after this step's `measured` event: the next step's clip is its own.
        self._clipped, self._pre_clip_norm = False, None

    def on_losses_read(self, event: LossesRead) -> None:
        # Steady-state losses extend the loss history and may confirm a pending spike.
        if event.location in self._reported:
            return
        history = self._history(event.location)
        if history.pending is None:  # the usual case: only the loss history grows
            history.losses.extend(filter(math.isfinite, event.losses))
            return
        for measured in event.per_step():
            if finite(measured.loss):
                history.losses.append(measured.loss)
            if history.pending is not None:
                self._confirm(measured, history)
                if event.location in self._reported:
                    return

    def _history(self, location: Location) -> _NormHistory:
        history = self._histories.get(location)
        if history is None:  # not setdefault: that would build a history for every event
            history = self._histories[location] = _NormHistory(self._limits.spike_history)
        return history

    def on_measured(self, event: StepMeasured) -> None:
        if event.location in self._reported:
            return
        history = self._history(event.location)
        if finite(event.loss):
            history.losses.append(event.loss)
        norm = event.grad_norm
        if norm is not None and self._pre_clip_norm is not None:
            norm = float(self._pre_clip_norm)
        if not finite(norm) or norm <= 0:
            self._confirm(event, history)
            return
        if norm > self._limits.exploding_norm:
            self._report(event, norm, f"above the alert threshold {self._limits.exploding_norm:g}", {})
            return
        judged = history.measured >= self._limits.norm_warmup
        history.measured += 1
        median = statistics.median(history.log_norms) if len(history.log_norms) >= _RECENT else None
        # A clipped step's update is bounded whatever the norm: only sustained growth is judged.
        if judged and median is not None and not self._clipped and history.pending is None:
            deviation = 1.4826 * statistics.median(abs(value - median) for value in history.log_norms)
            margin = max(math.log(self._limits.spike_factor), _SPIKE_DEVIATIONS * deviation)
            if math.log(norm) - median > margin:
                history.pending = (event.step, norm, math.exp(median), history.loss_median(), _CONFIRM_WITHIN)
                # The spike does not enter the history: it would raise the median it is judged against.
                self._confirm(event, history)
                return
        history.log_norms.append(math.log(norm))
        self._confirm(event, history)
        if not self._judge_runaway(event, history, norm):
            self._judge_growth(event, history, judged, norm)

    def _confirm(self, event: StepMeasured, history: _NormHistory) -> None:
        """Report a pending spike once the loss confirms it; forget it after a few measurements."""
        if history.pending is None:
            return
        step, norm, median, loss_before, left = history.pending
        if loss_jumped(event.loss, loss_before):
            history.pending = None
            self._report(
                event,
                norm,
                f"{norm / median:.0f}x its running median {median:.3g} (measured at step {step}), and the loss "
                f"then reached {event.loss:.4g}" + ("" if loss_before is None else f" from a median of {loss_before:.4g}"),
                {"spike_step": step, "running_median": round(median, 6), "loss": event.loss, "loss_median_before": loss_before},
            )
        else:
            history.pending = None if left <= 1 else (step, norm, median, loss_before, left - 1)

    def _judge_runaway(self, event: StepMeasured, history: _NormHistory, norm: float) -> bool:
        """A blow-up from any step on: norm and loss rose at each of the last measurements, the norm
        `growth_factor` times over and the loss well above where it was."""
        if not finite(event.loss):
            history.last_pairs.clear()
            return False
        if len(history.last_pairs) == _RUNAWAY:
            history.highest_loss_before = max(history.highest_loss_before, history.last_pairs[0][1])
        history.last_pairs.append((norm, event.loss))
        pairs = list(history.last_pairs)
        if len(pairs) < _RUNAWAY:
            return False
        rising = all(later[0] > earlier[0] and later[1] > earlier[1] for earlier, later in zip(pairs, pairs[1:]))
        (first_norm, first_loss), (last_norm, last_loss) = pairs[0], pairs[-1]
        # Above every loss the run had before: a small batch's loss bouncing back from near 0 is not a blow-up.
        new_high = last_loss > history.highest_loss_before
        if not (rising and new_high and last_norm >= self._limits.growth_factor * first_norm and loss_jumped(last_loss, first_loss)):
            return False
        self._report(
            event,
            norm,
            f"up {last_norm / first_norm:.0f}x in {_RUNAWAY - 1} measurements while the loss rose from "
            f"{first_loss:.4g} to {last_loss:.4g}: the run is blowing up",
            {"norms": [round(n, 6) for n, _ in pairs], "losses": [loss for _, loss in pairs]},
        )
        return True

    def _judge_growth(self, event: StepMeasured, history: _NormHistory, judged: bool, norm: float) -> None:
        """Sustained growth: the last measurements' median norm far above the lowest median the run
        had, while the loss median rose too. Three measurements, not ten: after the first steps the
        norms are sampled, sometimes dozens of steps apart."""
        norm_median = history.recent_median(history.log_norms)
        loss_median = history.recent_median(history.losses)
        if norm_median is not None:
            history.lowest_norm_median = min(history.lowest_norm_median, norm_median)
        if loss_median is not None:
            history.lowest_loss_median = min(history.lowest_loss_median, loss_median)
        if not judged or not math.isfinite(history.lowest_norm_median) or not math.isfinite(history.lowest_loss_median):
            return
        latest = statistics.median(list(history.log_norms)[-_RUNAWAY:])
        grown = latest - history.lowest_norm_median > math.log(self._limits.growth_factor)
        if grown and loss_jumped(loss_median, history.lowest_loss_median):
            self._report(
                event,
                norm,
                f"and the median of the last {_RUNAWAY} measurements ({math.exp(latest):.4g}) is "
                f"{math.exp(latest - history.lowest_norm_median):.0f}x the lowest median the run had ({math.exp(history.lowest_norm_median):.4g}) "
                f"while the loss rose from a median of {history.lowest_loss_median:.4g} to {loss_median:.4g}",
                {"median_norm": round(math.exp(latest), 6), "lowest_median_norm": round(math.exp(history.lowest_norm_median), 6),
                 "loss_median": loss_median, "lowest_loss_median": history.lowest_loss_median},
            )

    def _report(self, event: StepMeasured, norm: float, why: str, evidence: dict) -> None:
        self._reported.add(event.location)
        self.report(
            f"the total gradient norm is {norm:.4g} at step {event.step}, {why}",
            event.location,
            evidence={"grad_norm": round(norm, 6), **evidence},
            step=event.step,
        )
