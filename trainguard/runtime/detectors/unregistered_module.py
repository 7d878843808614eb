"""TG301 unregistered-module: a trainable module that runs inside a model but is not part of it."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import HiddenModuleCall


class UnregisteredModule(Detector):
    code = "TG301"

    def on_hidden_module(self, event: HiddenModuleCall) -> None:
        values = sum(p.numel() for p in event.module.parameters() if p.requires_grad)
        if values == 0:  # a frozen (or parameter-free) helper loses nothing by being unregistered
            return
        self.report(
            f"{type(event.module).__name__} ({values:,} trainable values) runs inside "
            f"{event.root.name}.forward but is not registered in it: model.parameters(), .to(device), "
            f"state_dict() and optimizers built from the model never see it",
            event.location,
            evidence={"module": type(event.module).__name__, "trainable_values": values, "model": event.root.name},
        )
