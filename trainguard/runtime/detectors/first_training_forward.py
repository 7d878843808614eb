"""The base of TG802 dataparallel-used and TG803 batchnorm-without-syncbn: how a model is spread
over devices, judged at its first training forward."""

from __future__ import annotations

from torch import nn

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ForwardCall


class FirstTrainingForward(Detector):
    """Base of the rules that look at a model once, at its first training forward (no `code`:
    not a rule itself)."""

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._seen: set[int] = set()

    def on_forward(self, event: ForwardCall) -> None:
        module = event.root.module
        if not event.training or module is None or id(module) in self._seen:
            return
        self._seen.add(id(module))
        self.judge(event, module)

    def judge(self, event: ForwardCall, module: nn.Module) -> None:
        """Look at a model at its first training forward."""
