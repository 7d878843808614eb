"""The reference training pipeline: `fit()` in code, `trainguard train` on the command line.

    from trainguard.pipeline import FitConfig, fit
    fit(model, loss_fn, optimizer, train_dataset, val_dataset, config=FitConfig(out_dir="run", epochs=3))
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: the submodules import torch (~1 s), which `trainguard --help` should not pay.
_HOMES = {
    "CheckpointError": "checkpoints", "load_checkpoint": "checkpoints",
    "FitResult": "loop", "NonFiniteLossError": "loop", "fit": "loop",
    "ConfigError": "settings", "FitConfig": "settings",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
