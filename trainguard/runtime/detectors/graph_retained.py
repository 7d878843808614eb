"""TG204 graph-retained: loss tensors (with their graphs) kept alive across steps."""

from __future__ import annotations

import weakref

from trainguard.runtime.callsite import Location
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LossCall, StepStart

_MAX_TRACKED = 4096
# A loss still alive two steps after it was made, for losses of at least two different steps:
# keeping the last loss (`last = loss`) or the best one is fine, a growing list is not.
_AGE = 2
_DISTINCT_STEPS = 2


class GraphRetained(Detector):
    code = "TG204"
    fix = "keep numbers, not tensors: losses.append(loss.item()) (or loss.detach()) instead of losses.append(loss)"

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(session)
        self._live: list[tuple[weakref.ref, int, Location]] = []
        self._done = False

    def on_loss(self, event: LossCall) -> None:
        if not self._done and event.output.grad_fn is not None and len(self._live) < _MAX_TRACKED:
            self._live.append((weakref.ref(event.output), self.session.step, event.location))

    def on_step_start(self, event: StepStart) -> None:
        if self._done:
            return
        self._live = [entry for entry in self._live if entry[0]() is not None]
        old = [entry for entry in self._live if entry[1] <= self.session.step - _AGE]
        if len({step for _, step, _ in old}) < _DISTINCT_STEPS:
            return
        self._done = True
        _, first_step, location = old[0]
        self.report(
            f"{len(old)} loss tensors from {len({s for _, s, _ in old})} earlier steps are still alive, "
            f"each holding its autograd graph: memory grows every step",
            location,
            evidence={"live_loss_tensors": len(old), "oldest_step": first_step},
            step=event.index,
        )
        self._live = []
