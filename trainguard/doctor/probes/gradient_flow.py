"""Gradient flow: does one backward pass give every trainable layer a finite, non-zero gradient?

One forward and backward pass of a fresh copy on the probes' batch (no optimizer step); gradient
norms are summed per layer (the module owning the parameters). A layer fails when its gradient
holds NaN/Inf (TG107); it is reported when it receives no gradient at all, i.e. it is not on the
path from the inputs to the loss (TG106), or when its gradient norm is 0 or below `VANISHING`
times the largest layer's (TG109, a dead or vanishing layer). The table of per-layer norms is in
every report, and the HTML page charts it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trainguard.doctor.context import ProbeContext
from trainguard.doctor.probe import Outcome, Plot, Probe, Table, make_finding

VANISHING = 1e-6


def _layer(name: str) -> str:
    return name.rpartition(".")[0] or "(model)"


def layer_norms(model: torch.nn.Module) -> dict[str, dict[str, float | int | None]]:
    """Per layer: parameter count, gradient norm (None when no parameter got a gradient), weight norm."""
    layers: dict[str, dict[str, float | int | None]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        row: dict[str, Any] = layers.setdefault(_layer(name), {"parameters": 0, "grad_norm": None, "weight_norm": 0.0})
        row["parameters"] += parameter.numel()
        row["weight_norm"] = math.hypot(row["weight_norm"], float(parameter.detach().float().norm()))
        if parameter.grad is not None:
            row["grad_norm"] = math.hypot(row["grad_norm"] or 0.0, float(parameter.grad.detach().float().norm()))
    return layers


def run(context: ProbeContext) -> Outcome:
    """One backward pass of a fresh copy; check and tabulate the gradient norm of every layer."""
    model = context.fresh_model()
    model.zero_grad(set_to_none=True)
    context.loss(model, context.batch()).backward()
    layers = layer_norms(model)
    finite = [row["grad_norm"] for row in layers.values() if row["grad_norm"] is not None and math.isfinite(row["grad_norm"])]
    largest = max(finite, default=0.0)
    non_finite = [name for name, row in layers.items() if row["grad_norm"] is not None and not math.isfinite(row["grad_norm"])]
    no_gradient = [name for name, row in layers.items() if row["grad_norm"] is None]
    vanishing = [name for name, row in layers.items()
                 if row["grad_norm"] is not None and math.isfinite(row["grad_norm"]) and row["grad_norm"] <= VANISHING * largest]
    place = context.model_place()
    findings = []
    if non_finite:
        findings.append(make_finding("non-finite-gradients", f"NaN/Inf gradients in {', '.join(non_finite)} after one backward pass",
                                     fix="look for log(0), division by zero or overflow in forward(); check the inputs for NaN/Inf",
                                     place=place, evidence={"layers": non_finite}))
    if no_gradient:
        findings.append(make_finding(
            "params-without-grad", f"{', '.join(no_gradient)} received no gradient: not on the path from the inputs to the loss",
            fix="use the layer in forward(), or freeze it (requires_grad_(False)) and leave it out of the optimizer",
            place=place, evidence={"layers": no_gradient}))
    if vanishing:
        findings.append(make_finding(
            "vanishing-gradients",
            f"{', '.join(vanishing)} got a gradient norm of 0 or below {VANISHING:g}x the largest layer's ({largest:.3g}): "
            "dead or vanishing layers do not learn",
            fix="check for dead ReLUs (very negative biases, too large a learning rate), saturated activations and the "
                "initialisation; normalisation layers or residual connections help deep stacks",
            place=place, evidence={"layers": vanishing, "largest_norm": largest}))
    rows = [[name, row["parameters"], row["grad_norm"], row["weight_norm"],
             (row["grad_norm"] / row["weight_norm"]) if row["grad_norm"] is not None and row["weight_norm"] else None]
            for name, row in layers.items()]
    table = Table(["layer", "parameters", "grad norm", "weight norm", "grad / weight"], rows)
    plot = Plot("bars", "gradient norm per layer", [(name, row["grad_norm"] or 0.0) for name, row in layers.items()], log_y=True)
    evidence = {"layers": len(layers), "largest_norm": largest, "smallest_norm": min(finite, default=0.0)}
    summary = (f"{len(layers) - len(non_finite) - len(no_gradient) - len(vanishing)} of {len(layers)} layers get a healthy "
               f"gradient (norms {evidence['smallest_norm']:.3g} .. {largest:.3g})")
    return Outcome(summary, findings, evidence, table=table, plot=plot)


PROBE = Probe("gradient-flow", "Gradient flow per layer", run)
