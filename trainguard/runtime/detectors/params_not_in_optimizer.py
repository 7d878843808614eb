"""TG105 params-not-in-optimizer: trainable parameters that get gradients but never an update."""

from __future__ import annotations

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class ParamsNotInOptimizer(Detector):
    code = "TG105"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._checked: set[int] = set()

    def on_step_start(self, event: StepStart) -> None:
        if not self.session.detailed:
            return
        roots = {id(call.root): call.root for call in self.session.window.forwards if call.training and call.grad_enabled}
        for key, root in roots.items():
            if key in self._checked:
                continue
            named = root.named_parameters()
            if not any(p.grad is not None for _, p in named):
                continue  # judged at a step where this model is trained
            self._checked.add(key)
            known: set[int] = set()
            for state in self.session.optimizer_states.values():
                known |= state.param_ids
            missing = [name for name, p in named if p.requires_grad and p.grad is not None and id(p) not in known]
            if missing:
                count = sum(p.numel() for name, p in named if name in set(missing))
                self.report(
                    f"{len(missing)} trainable parameter tensor(s) of {root.name} ({count:,} values) "
                    f"receive gradients but are in no optimizer, so they never change: "
                    f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
                    event.location,
                    evidence={"parameters": missing[:20], "values": count},
                    step=event.index,
                )
