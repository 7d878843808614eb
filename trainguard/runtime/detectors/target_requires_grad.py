"""TG309 target-requires-grad: a loss target whose graph reaches the prediction's parameters.

Most targets are labels or tensors without a graph: `target.requires_grad` (a flag, no device
read) is False and the call costs nothing more. Only a target that requires grad has its autograd
graph walked for the parameters it was computed from, and then the prediction's graph for one of
them (both walks bounded). A target computed by another model (a teacher, a target network) shares
no parameter with the prediction and stays silent; so does a detached one or one made under
no_grad. Each call site is judged on its first few calls only: the graph a line builds has the
same shape at every step.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LossCall

_MAX_NODES = 20000  # autograd nodes walked per graph (a large transformer step has a few thousand)
_CALLS_JUDGED = 3  # calls per call site whose graphs are walked


def _parameters_reached(tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    """The leaf tensors that require grad (parameters) whose gradient `tensor`'s graph computes."""
    seen: set[int] = set()
    stack: list[Any] = [tensor.grad_fn]
    while stack and len(seen) < _MAX_NODES:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)  # AccumulateGrad: the leaf it accumulates into
        if isinstance(variable, torch.Tensor):
            yield variable
        stack.extend(child for child, _ in node.next_functions)


class TargetRequiresGrad(Detector):
    """TG309, at the loss call whose target's graph and prediction's graph share a parameter."""

    code = "TG309"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._judged: dict[tuple[str | None, int | None], int] = {}  # call site -> calls walked
        self._shared: dict[tuple[str | None, int | None], int] = {}  # call site -> parameters shared

    def on_loss(self, event: LossCall) -> None:
        target = event.target
        if not isinstance(target, torch.Tensor) or target.grad_fn is None or event.input.grad_fn is None:
            return
        place = (event.location.path, event.location.line)
        shared = self._shared.get(place)
        if shared is None:
            calls = self._judged.get(place, 0)
            if calls >= _CALLS_JUDGED:
                return
            self._judged[place] = calls + 1
            from_target = {id(p) for p in _parameters_reached(target)}
            shared = sum(1 for p in _parameters_reached(event.input) if id(p) in from_target)
            if not shared:
                return
            self._shared[place] = shared
        self.report(
            f"the {event.name} target carries a graph through {shared} trainable tensor(s) the prediction "
            f"also depends on: backward also moves the target (it was not detached)",
            event.location,
            evidence={"shared_parameters": shared, "target_shape": list(target.shape)},
        )
