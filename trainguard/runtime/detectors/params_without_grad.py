"""TG106 params-without-grad: parameters an optimizer holds that never receive a gradient."""

from __future__ import annotations

import weakref

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart

JUDGED_AT_STEP = 2  # a parameter without a gradient at each of the first 3 steps


class ParamsWithoutGrad(Detector):
    code = "TG106"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._candidates: dict[int, dict[int, weakref.ref]] = {}

    def on_step_start(self, event: StepStart) -> None:
        if event.index > JUDGED_AT_STEP:
            return
        key = id(event.state)
        sample = event.state.sample() if event.state.sample is not None else None
        if event.state.accumulations and sample is not None and sample.grad is None:
            # Backward passes reached the parameters and their gradients were cleared before the
            # step (TG114): .grad no longer tells which parameters receive one.
            self._candidates[key] = {}
            return
        if event.index == 0:
            self._candidates[key] = {
                id(p): weakref.ref(p)
                for group in event.optimizer.param_groups
                for p in group["params"]
                if p.requires_grad and p.grad is None
            }
            return
        candidates = self._candidates.get(key, {})
        for pid, ref in list(candidates.items()):
            param = ref()
            if param is None or param.grad is not None:
                del candidates[pid]
        if event.index == JUDGED_AT_STEP and candidates:
            names = self._names(set(candidates))
            self.report(
                f"{len(candidates)} parameter tensor(s) in the optimizer received no gradient in "
                f"the first {JUDGED_AT_STEP + 1} steps: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}",
                event.location,
                evidence={"parameters": names[:20]},
                step=event.index,
            )

    def _names(self, ids: set[int]) -> list[str]:
        names: dict[int, str] = {}
        for root in list(self.session.roots.values()):
            for name, param in root.named_parameters():
                if id(param) in ids:
                    names.setdefault(id(param), f"{root.name}.{name}")
        return [names.get(pid, "<unnamed>") for pid in ids]
