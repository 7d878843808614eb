"""Eval mode: are predictions in eval mode deterministic, and does train mode differ when it should?

Two forward passes of a fresh copy in eval mode under `no_grad` on the same batch must agree (to
`TOLERANCE` relative to the outputs' scale; on a CPU they are bitwise equal). When they do not,
something random is still active in eval mode: `F.dropout(x, p)` without `training=self.training`,
or a Dropout hidden in a plain list that `.eval()` never reaches (TG201). When the model has
BatchNorm or Dropout with p > 0, a train-mode pass must differ from the eval-mode one; identical
outputs mean the modes have no effect (`train()` overridden, say) and are reported. Dropout with
p = 0 is left out: a common configured default, inert by choice. NaN compares equal to NaN (the
same NaN twice is deterministic); when the outputs hold NaN or inf, the train/eval comparison
says nothing (dropout and batch statistics of NaN are NaN) and is not reported.
"""

from __future__ import annotations

import torch
from torch import nn

from trainguard.doctor.batches import forward
from trainguard.doctor.compare import all_finite, differ
from trainguard.doctor.context import ProbeContext
from trainguard.doctor.probe import Outcome, Probe, make_finding
from trainguard.findings import Severity

TOLERANCE = 1e-5


def _depends_on_mode(module: nn.Module) -> bool:
    # Dropout(p=0) is a common configuration default (nanoGPT's dropout=0.0): inert by choice.
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return module.p > 0
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def run(context: ProbeContext) -> Outcome:
    """Compare two eval-mode passes, and a train-mode pass, on the probes' batch."""
    model = context.fresh_model()
    inputs, _ = context.batch()
    mode_modules = sorted({type(module).__name__ for module in model.modules() if _depends_on_mode(module)})
    with torch.no_grad():
        model.eval()
        first, second = forward(model, inputs), forward(model, inputs)
        model.train()
        trained = forward(model, inputs)
    changed, eval_difference = differ(first, second, TOLERANCE)
    finite = all_finite(first)
    train_differs, train_difference = differ(first, trained, TOLERANCE)
    evidence = {"eval_max_difference": eval_difference, "train_eval_max_difference": train_difference,
                "mode_dependent_modules": mode_modules}
    findings = []
    if changed:
        findings.append(make_finding(
            "eval-mode-missing",
            f"two eval-mode passes under no_grad on the same batch differ (max |difference| {eval_difference:.3g}): "
            "something random stays active in eval mode",
            fix="use registered nn.Dropout modules, or F.dropout(x, p, training=self.training); keep modules out of plain lists",
            place=context.model_place(r"dropout|rand"), evidence=evidence))
    elif mode_modules and finite and not train_differs:
        findings.append(make_finding(
            "eval-mode",
            f"the model has {', '.join(mode_modules)} but its train-mode and eval-mode outputs are identical: "
            "the modes have no effect",
            fix="check that train()/eval() are not overridden and reach every Dropout/BatchNorm",
            place=context.model_place(), evidence=evidence, severity=Severity.WARNING))
    if changed:
        summary = f"eval-mode outputs differ between two passes (max {eval_difference:.3g})"
    elif mode_modules and not finite:
        summary = "eval mode deterministic; outputs are not finite, so train and eval modes were not compared"
    elif mode_modules:
        summary = (f"eval mode deterministic; train mode differs by up to {train_difference:.3g} "
                   f"({', '.join(mode_modules)})")
    else:
        summary = "eval mode deterministic; no Dropout/BatchNorm, so train and eval modes compute the same"
    return Outcome(summary, findings, evidence)


PROBE = Probe("eval-mode", "Eval determinism and train/eval difference", run, requires="forward")
