"""Device parity: do the CPU and the GPU agree on a tiny run?

Only with a CUDA GPU (otherwise skipped, saying so). Two fresh copies, one per device, with the
same initial weights and fresh optimizers, take `STEPS` optimizer steps on the probes' batch in
eval mode (so that dropout masks, which differ between devices, do not count; BatchNorm uses its
running statistics). Their losses at every step and their final parameters must agree to
`TOLERANCE` relative to the values' scale; a NaN/Inf on one device only is an error.
"""

from __future__ import annotations

import math

import torch

from trainguard.doctor.compare import differ, parameters_of
from trainguard.doctor.context import ProbeContext
from trainguard.doctor.probe import Outcome, Probe, Table, make_finding
from trainguard.findings import Severity

STEPS = 3
# TF32 convolutions (cuDNN's default) and a different summation order differ from fp32 on the CPU
# by about 1e-4 relative; a real divergence is orders of magnitude larger.
TOLERANCE = 1e-3


def _tiny_run(context: ProbeContext, device: torch.device) -> tuple[list[float], list[torch.Tensor]]:
    model = context.fresh_model(device).eval()
    optimizer = context.fresh_optimizer(model)
    batch = context.batch(device)
    losses = [context.train_step(model, optimizer, batch) for _ in range(STEPS)]
    return losses, [parameter.cpu() for parameter in parameters_of(model)]


def run(context: ProbeContext) -> Outcome:
    """Take the same few steps on the CPU and the GPU and compare losses and parameters."""
    gpu = torch.device("cuda")
    cpu_losses, cpu_parameters = _tiny_run(context, torch.device("cpu"))
    gpu_losses, gpu_parameters = _tiny_run(context, gpu)
    losses_differ, loss_difference = differ(torch.tensor(cpu_losses), torch.tensor(gpu_losses), TOLERANCE)
    parameters_differ, parameter_difference = differ(cpu_parameters, gpu_parameters, TOLERANCE)
    evidence = {"device": torch.cuda.get_device_name(gpu), "steps": STEPS, "loss_max_difference": loss_difference,
                "parameter_max_difference": parameter_difference}
    table = Table(["step", "CPU loss", "GPU loss"], [[step, a, b] for step, (a, b) in enumerate(zip(cpu_losses, gpu_losses))])
    finite = [all(math.isfinite(loss) for loss in losses) for losses in (cpu_losses, gpu_losses)]
    if finite[0] != finite[1]:
        where = "GPU" if finite[0] else "CPU"
        finding = make_finding("device-parity", f"the loss becomes NaN/Inf on the {where} only, within {STEPS} steps",
                               fix="look for operations whose numerics differ between devices (reduced precision, uninitialised memory)",
                               place=context.model_place(), evidence=evidence, severity=Severity.ERROR)
        return Outcome(f"NaN/Inf on the {where} only", [finding], evidence, table=table)
    if losses_differ or parameters_differ:
        finding = make_finding(
            "device-parity",
            f"CPU and GPU disagree after {STEPS} steps: losses by up to {loss_difference:.3g}, parameters by up to "
            f"{parameter_difference:.3g} (tolerance {TOLERANCE:g} relative)",
            fix="look for device-dependent code in forward() (x.is_cuda branches, tensors created without device=) and "
                "reduced-precision settings (torch.backends.cuda.matmul.allow_tf32)",
            place=context.model_place(), evidence=evidence, severity=Severity.WARNING)
        return Outcome("CPU and GPU disagree", [finding], evidence, table=table)
    return Outcome(f"CPU and {evidence['device']} agree over {STEPS} steps (losses within {loss_difference:.2g}, "
                   f"parameters within {parameter_difference:.2g})", [], evidence, table=table)


def needs_gpu(context: ProbeContext) -> str | None:
    """Why the probe cannot run here (no CUDA GPU), or None."""
    return None if torch.cuda.is_available() else "no GPU: CPU vs GPU parity not measured"


PROBE = Probe("device-parity", "CPU vs GPU parity", run, applies=needs_gpu)
