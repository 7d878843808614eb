"""trainguard: catches the silent failures of PyTorch training.

Public API::

    with trainguard.watch():      # or trainguard.watch() ... trainguard.unwatch()
        train()

    trainguard.fit(model, loss_fn, optimizer, train_data, val_data,
                   config=trainguard.FitConfig(out_dir="run", epochs=3))

See ``trainguard rules`` for the catalogue and ``trainguard run -- python train.py`` for the
zero-code-change runtime guard.
"""

from __future__ import annotations

__version__ = "0.1.0"

from trainguard.findings import Finding, Severity
from trainguard.runtime.api import GuardStop, findings, unwatch, watch

__all__ = ["FitConfig", "Finding", "GuardStop", "Severity", "__version__", "findings", "fit", "unwatch", "watch"]


def __getattr__(name: str) -> object:
    # trainguard.fit / trainguard.FitConfig: the reference pipeline, loaded on first use.
    if name in ("fit", "FitConfig"):
        import trainguard.pipeline

        return getattr(trainguard.pipeline, name)
    raise AttributeError(f"module 'trainguard' has no attribute {name!r}")
