"""TG701 unsafe-torch-load: `torch.load` that unpickles arbitrary objects."""

from __future__ import annotations

import os

import torch

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import TorchLoad


def _default_is_weights_only() -> bool:
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    forced_off = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0").lower() not in ("0", "", "false")
    return (major, minor) >= (2, 6) and not forced_off


class UnsafeTorchLoad(Detector):
    code = "TG701"

    def on_torch_load(self, event: TorchLoad) -> None:
        if event.weights_only is True or (event.weights_only is None and _default_is_weights_only()):
            return
        why = "weights_only=False" if event.weights_only is False else "no weights_only=True on this PyTorch"
        self.report(
            f"torch.load unpickles arbitrary Python objects ({why}): a crafted checkpoint runs code on load",
            event.location,
            evidence={"weights_only": event.weights_only, "torch": torch.__version__},
        )
