"""trainguard: catches the silent failures of PyTorch training.

Public API::

    with trainguard.watch():      # or trainguard.watch() ... trainguard.unwatch()
        train()

See ``trainguard rules`` for the catalogue and ``trainguard run -- python train.py`` for the
zero-code-change runtime guard.
"""

from __future__ import annotations

__version__ = "0.1.0"

from trainguard.findings import Finding, Severity  # noqa: E402
from trainguard.runtime.api import GuardStop, findings, unwatch, watch  # noqa: E402

__all__ = ["Finding", "GuardStop", "Severity", "__version__", "findings", "unwatch", "watch"]
