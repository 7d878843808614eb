"""TG115 scheduler-stepped-per-batch: an epoch-scale LR schedule stepped once per batch."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from torch.optim import lr_scheduler

from trainguard.runtime.callsite import Location
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LoaderBatch, LoaderIterated, SchedulerStep

EPOCH_SCALE = (lr_scheduler.StepLR, lr_scheduler.MultiStepLR, lr_scheduler.ExponentialLR, lr_scheduler.CosineAnnealingLR)
# StepLR / ExponentialLR have no end: their schedule counts as used up once the learning rate fell
# this many times below its start.
COLLAPSE = 100.0


@dataclass
class _Watch:
    """One scheduler during the loader pass in which the user first stepped it."""

    loader: weakref.ref
    pass_number: int
    steps: int = 0
    # (batches drawn in that pass, the loader's length, learning rate, base rate) when its schedule was used up.
    used_up: tuple[int, int, float, float] | None = None
    reported: bool = False


class SchedulerSteppedPerBatch(Detector):
    """TG115, at a scheduler step in the second pass over the training loader: the scheduler was
    stepped several times in the first pass and its whole schedule (StepLR / ExponentialLR: a
    100x fall; MultiStepLR: its last milestone; CosineAnnealingLR: T_max) was used up within the
    first half of that pass, and training went on into the next pass. A schedule sized in steps
    (OneCycleLR, LambdaLR warm-up, T_max = epochs * len(loader)) lasts longer than half an epoch;
    a run that ends when its schedule does never starts a second pass."""

    code = "TG115"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._passes: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._drawn: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._current: weakref.ref | None = None  # the loader the last batch came from
        self._watched: weakref.WeakKeyDictionary[Any, _Watch] = weakref.WeakKeyDictionary()

    def on_loader_iter(self, event: LoaderIterated) -> None:
        loader = event.loader
        self._passes[loader] = self._passes.get(loader, 0) + 1
        self._drawn[loader] = 0

    def on_loader_batch(self, event: LoaderBatch) -> None:
        loader = event.loader
        self._drawn[loader] = self._drawn.get(loader, 0) + 1
        if self._current is None or self._current() is not loader:
            self._current = weakref.ref(loader)

    def on_scheduler_step(self, event: SchedulerStep) -> None:
        scheduler = event.scheduler
        loader = self._current() if self._current is not None else None
        if not isinstance(scheduler, EPOCH_SCALE) or loader is None:
            return
        watch = self._watched.get(scheduler)
        if watch is None:
            watch = self._watched[scheduler] = _Watch(weakref.ref(loader), self._passes.get(loader, 0))
        if watch.loader() is not loader:
            return
        if self._passes.get(loader, 0) == watch.pass_number:
            watch.steps += 1
            if watch.used_up is None and watch.steps >= 2:
                watch.used_up = self._used_up(scheduler, loader)
        elif watch.used_up is not None and not watch.reported:
            watch.reported = True
            self._report(scheduler, watch, event.location)

    def _used_up(self, scheduler: Any, loader: Any) -> tuple[int, int, float, float] | None:
        """The schedule's state, when it was used up within the first half of the loader's pass.

        Called before the scheduler's step: `last_epoch` and the learning rate are those of the
        steps taken so far."""
        try:
            length = len(loader)
        except TypeError:  # an iterable dataset: no epoch length to compare with
            return None
        drawn = self._drawn.get(loader, 0)
        if drawn * 2 > length:
            return None
        rates = [(float(lr), float(base)) for lr, base in zip(scheduler.get_last_lr(), scheduler.base_lrs)
                 if isinstance(lr, float) and isinstance(base, (int, float)) and base > 0]
        if not rates:
            return None
        lr, base = min(rates, key=lambda pair: pair[0] / pair[1])
        if isinstance(scheduler, lr_scheduler.MultiStepLR):
            used_up = bool(scheduler.milestones) and scheduler.last_epoch >= max(scheduler.milestones)
        elif isinstance(scheduler, lr_scheduler.CosineAnnealingLR):
            used_up = scheduler.last_epoch >= scheduler.T_max
        else:
            used_up = lr * COLLAPSE <= base
        return (drawn, length, lr, base) if used_up else None

    def _report(self, scheduler: Any, watch: _Watch, location: Location) -> None:
        assert watch.used_up is not None
        drawn, length, lr, base = watch.used_up
        name = type(scheduler).__name__
        self.report(
            f"{name}.step() runs once per batch, but its schedule is sized in epochs: it was used up "
            f"by batch {drawn} of the first epoch's {length}, and the learning rate fell from {base:g} to {lr:g} "
            f"while training went on",
            location,
            evidence={"scheduler": name, "used_up_at_batch": drawn, "batches_per_epoch": length,
                      "lr": lr, "initial_lr": base, "steps_in_first_epoch": watch.steps},
        )
