"""TG204 graph-retained: autograd graphs of earlier steps kept alive (losses or outputs in a list,
`total_loss += loss`), so memory grows every step.

A graph is followed through its output node, not the tensor: a pre-hook object registered on the
node of each model output (and of each loss in a step without a model forward) is held by that
node only, so a weak reference to it is alive exactly as long as the graph is — whether the
tensor itself is kept (`losses.append(loss)`) or only a tensor computed from it
(`total_loss += loss`).
"""

from __future__ import annotations

import weakref
from typing import Any

from trainguard.runtime.callsite import Location
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ForwardCall, LossCall, StepStart

_MAX_TRACKED = 4096
# Alive two steps after it was built, for graphs of at least two different steps: keeping the
# last loss (`last = loss`) or the best one is fine, a growing list or a running sum is not.
_AGE = 2
_DISTINCT_STEPS = 2


class _GraphAlive:
    """Hook object on a loss's grad_fn; does nothing when called."""

    __slots__ = ("__weakref__",)

    def __call__(self, grad_outputs: Any) -> None:
        return None


class GraphRetained(Detector):
    code = "TG204"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._graphs: list[tuple[weakref.ref, int, Location, str]] = []
        self._done = False

    def on_loss(self, event: LossCall) -> None:
        node = event.output.grad_fn
        if self._done or node is None or len(self._graphs) >= _MAX_TRACKED:
            return
        if any(call.reach is not None for call in self.session.window.forwards):
            # A loss of a model's output keeps that output's graph alive, and the model probe
            # already watches it (on_forward): a hook of our own on every loss would cost ~8 us a step.
            return
        alive = _GraphAlive()
        node.register_prehook(alive)
        self._graphs.append((weakref.ref(alive), self.session.step, event.location, "loss"))

    def on_forward(self, event: ForwardCall) -> None:
        if not self._done and event.reach is not None and len(self._graphs) < _MAX_TRACKED:
            self._graphs.append((weakref.ref(event.reach), event.step, event.location, "model output"))

    def on_step_start(self, event: StepStart) -> None:
        if self._done:
            return
        self._graphs = [entry for entry in self._graphs if entry[0]() is not None]
        old = [entry for entry in self._graphs if entry[1] <= self.session.step - _AGE]
        steps = sorted({step for _, step, _, _ in old})
        if len(steps) < _DISTINCT_STEPS:
            return
        self._done = True
        _, first_step, location, kind = old[0]
        self.report(
            f"the autograd graphs of {len(old)} {kind} tensors from {len(steps)} earlier steps are still "
            f"alive (kept in a list or summed into a tensor): memory grows every step",
            location,
            evidence={"graphs_alive": len(old), "oldest_step": first_step, "kind": kind},
            step=event.index,
        )
        self._graphs = []
