"""Peak memory per batch size: how much GPU memory one training step takes, and where it runs out.

CUDA only (on a CPU: skipped, "not measured"). For batch sizes of 1/2, 1, 2 and 4 times the
loader's, a fresh copy and optimizer take one training step; the table holds
`torch.cuda.max_memory_allocated` for each (the optimizer's state included) until a size runs out
of memory. Running out at the loader's own batch size is an error.
"""

from __future__ import annotations

import torch

from trainguard.doctor.batches import batch_size_of, collate, read_samples, to_device
from trainguard.doctor.context import ProbeContext
from trainguard.doctor.probe import Outcome, Probe, Table, make_finding
from trainguard.findings import Severity

MULTIPLES = (0.5, 1, 2, 4)
MIB = 2**20


def _peak(context: ProbeContext, size: int, device: torch.device) -> int:
    data = context.setup.train_data
    batch = to_device(collate(data, read_samples(data, size)), device)
    model = context.fresh_model(device)
    optimizer = context.fresh_optimizer(model)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    context.train_step(model, optimizer, batch)
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


def run(context: ProbeContext) -> Outcome:
    """Measure the peak GPU memory of one training step per batch size."""
    device = context.device
    configured = batch_size_of(context.setup.train_data)
    rows: list[list[object]] = []
    findings = []
    for size in sorted({max(1, int(configured * multiple)) for multiple in MULTIPLES}):
        if context.remaining() <= 0:
            rows.append([size, None, None, "skipped: time budget spent"])
            continue
        try:
            peak = _peak(context, size, device)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            rows.append([size, None, None, "out of memory"])
            if size <= configured:
                findings.append(make_finding(
                    "memory", f"one training step at batch size {size} runs out of GPU memory",
                    fix="lower the batch size (accumulate gradients to keep the effective size), use autocast, or checkpoint activations",
                    place=context.setup_place, evidence={"batch_size": size}, severity=Severity.ERROR))
            break
        rows.append([size, round(peak / MIB, 1), round(peak / MIB / size, 3), ""])
    evidence = {"device": torch.cuda.get_device_name(device), "total_mib": round(torch.cuda.get_device_properties(device).total_memory / MIB),
                "batch_size": configured}
    measured = [row for row in rows if row[1] is not None]
    summary = ", ".join(f"batch {row[0]}: {row[1]} MiB" for row in measured) or "no batch size fitted"
    return Outcome(f"peak memory per training step: {summary}", findings, evidence, table=Table(["batch size", "peak MiB", "MiB/sample", "note"], rows))


def needs_cuda(context: ProbeContext) -> str | None:
    """Why the probe cannot run here (the probes do not train on CUDA), or None."""
    return None if context.device.type == "cuda" else "peak memory is measured on CUDA only: not measured on the CPU"


PROBE = Probe("memory", "Peak memory per batch size", run, applies=needs_cuda)
