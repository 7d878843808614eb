"""`trainguard doctor`: readiness probes for a training set-up, and the training-readiness report.

    from trainguard.doctor import Setup, load_target, run_probes, select_probes

A TARGET function returns a `Setup` (or a dict with its fields); `run_probes` runs the selected
probes on fresh copies of the model and optimizer and returns one `ProbeResult` per probe.
The names are imported on first use, so that building the `trainguard` command line (which
imports `trainguard.doctor.command`) does not import PyTorch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ProbeResult": "trainguard.doctor.probe",
    "Verdict": "trainguard.doctor.probe",
    "run_probes": "trainguard.doctor.runner",
    "select_probes": "trainguard.doctor.runner",
    "Setup": "trainguard.doctor.setup",
    "TargetError": "trainguard.doctor.setup",
    "load_target": "trainguard.doctor.setup",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainguard.doctor' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
