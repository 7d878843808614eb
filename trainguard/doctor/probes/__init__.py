"""The doctor's probes, in the order they run: cheap checks of the set-up first, timing last
(so that a tight `--budget` cuts the measurements, not the checks). Adding a probe means adding a
module with a `PROBE` and naming it here."""

from __future__ import annotations

from trainguard.doctor.probe import Probe
from trainguard.doctor.probes import (
    checkpoint,
    data_sanity,
    device_parity,
    eval_mode,
    gradient_flow,
    loss_at_init,
    memory,
    overfit_batch,
    registration,
    throughput,
)

PROBES: tuple[Probe, ...] = tuple(module.PROBE for module in (
    registration, data_sanity, loss_at_init, overfit_batch, gradient_flow, eval_mode, checkpoint,
    device_parity, throughput, memory,
))
PROBE_NAMES = tuple(probe.name for probe in PROBES)
