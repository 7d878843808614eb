"""Loss at initialisation: is the first loss what the loss function predicts for an untrained model?

An untrained classifier should be unsure: over C classes its cross-entropy is about ln C (ln 2
for a binary `BCEWithLogitsLoss`). Far above that, the initial logits are too large and the first
steps are spent undoing the initialisation; far below it, the untrained model already knows the
labels (a leak, or a model that is not fresh). The probe passes when loss / expected lies in
[`LOW`, `HIGH`]; losses without an expected value (regression) only have to be finite.

The same forward pass shows whether the loss is fed what it expects: rows of probabilities
(non-negative, summing to 1) into `CrossEntropyLoss` (TG302), or values all in [0, 1] into
`BCEWithLogitsLoss` (TG303), which apply softmax / sigmoid themselves. `log_softmax` before
`CrossEntropyLoss` is not flagged: log_softmax is idempotent, so the loss is unchanged.

This probe also reports a forward pass or loss that raises on the first training batch; the probes
that need them are then skipped instead of repeating the error.
"""

from __future__ import annotations

import math

import torch

from trainguard.doctor.batches import forward
from trainguard.doctor.context import ProbeContext
from trainguard.doctor.losses import loss_kind
from trainguard.doctor.probe import Outcome, Probe, make_finding
from trainguard.doctor.setup import describe_error
from trainguard.findings import Severity

LOW, HIGH = 0.75, 1.5


def is_probabilities(output: torch.Tensor) -> bool:
    """Rows of non-negative values summing to 1 along the class dimension (a softmax output)."""
    if output.dim() < 2 or output.shape[1] < 2:
        return False
    sums = output.sum(dim=1)
    return bool((output >= 0).all() and torch.allclose(sums, torch.ones_like(sums), atol=1e-4))


def expected_loss(kind: str, output: torch.Tensor, targets: torch.Tensor) -> tuple[float, str] | None:
    """The loss of an unsure model and how it was derived, or None when there is no expectation."""
    integer_labels = not torch.is_floating_point(targets) and targets.dim() == output.dim() - 1
    if kind in ("cross-entropy", "nll", "other") and output.dim() >= 2 and integer_labels and output.shape[1] >= 2:
        classes = output.shape[1]
        return math.log(classes), f"ln {classes} (uniform over {classes} classes)"
    if kind == "bce-with-logits":
        return math.log(2), "ln 2 (p = 0.5 for every target)"
    return None


def run(context: ProbeContext) -> Outcome:
    """Check what the loss is fed and compare the first loss with what an unsure model scores."""
    model = context.fresh_model()
    inputs, targets = context.batch()
    kind = loss_kind(context.setup.loss_fn)
    with torch.no_grad():
        try:
            output = forward(model, inputs)
        except Exception as error:
            return Outcome("the model's forward pass raised on the first training batch", [make_finding(
                "loss-at-init", f"model(inputs) raised {describe_error(error)} on the first training batch",
                fix="make the model accept the batches of train_data (check input shapes and dtypes)",
                place=context.model_place(r"def forward"), severity=Severity.ERROR)])
        findings = []
        output_values = output.detach().float() if isinstance(output, torch.Tensor) else None
        if output_values is not None and kind == "cross-entropy" and is_probabilities(output_values):
            findings.append(make_finding(
                "softmax-before-cross-entropy",
                "the model's outputs are probabilities (every row is non-negative and sums to 1) and go into "
                "CrossEntropyLoss, which applies log_softmax itself: gradients shrink and training stalls",
                fix="return the raw logits from forward() and apply softmax only for predictions",
                place=context.model_place(r"softmax"), evidence={"row_sum_min": round(float(output_values.sum(dim=1).min()), 6)},
            ))
        if output_values is not None and kind == "bce-with-logits" and bool(((output_values >= 0) & (output_values <= 1)).all()):
            findings.append(make_finding(
                "sigmoid-before-bce-with-logits",
                "every model output lies in [0, 1] and goes into BCEWithLogitsLoss, which applies sigmoid itself",
                fix="return the raw logits from forward() and apply sigmoid only for predictions",
                place=context.model_place(r"sigmoid"),
            ))
        try:
            loss = float(context.setup.loss_fn(output, targets))
        except Exception as error:
            findings.append(make_finding(
                "loss-at-init", f"loss_fn(model(inputs), targets) raised {describe_error(error)} on the first training batch",
                fix="make the targets what loss_fn expects (class indices in [0, C) for cross-entropy; see data-sanity)",
                place=context.setup_place, severity=Severity.ERROR))
            return Outcome("loss_fn raised on the first training batch", findings, {"loss_kind": kind})
    evidence: dict[str, object] = {"loss": round(loss, 4), "loss_kind": kind}
    if not math.isfinite(loss):
        findings.append(make_finding("non-finite-loss", f"the loss at initialisation is {loss}",
                                     fix="look for NaN/Inf in the inputs (see data-sanity) and for log(0) or division by zero in the loss",
                                     place=context.setup_place, evidence=evidence))
        return Outcome(f"loss at initialisation is {loss}", findings, evidence)
    expectation = expected_loss(kind, output_values, targets) if output_values is not None else None
    if expectation is None:
        return Outcome(f"loss at initialisation {loss:.4g} (no expected value for this loss)", findings, evidence)
    expected, derivation = expectation
    ratio = loss / expected
    evidence.update(expected=round(expected, 4), ratio=round(ratio, 3))
    summary = f"loss at initialisation {loss:.4g}, expected {expected:.4g} = {derivation}, ratio {ratio:.2f}"
    probabilities_reported = any(f.code in ("TG302", "TG303") for f in findings)
    if not LOW <= ratio <= HIGH and not probabilities_reported:
        high = ratio > HIGH
        findings.append(make_finding(
            "loss-at-init",
            f"the loss at initialisation is {loss:.4g}, {ratio:.2f}x the {expected:.4g} of an unsure model ({derivation}): "
            + ("the initial outputs are too confident" if high else "the untrained model already predicts the labels"),
            fix="scale the last layer's initial weights down (or zero its bias) so the first outputs are near 0"
                if high else "check that targets do not leak into the inputs and that the model is freshly initialised",
            place=context.model_place(), evidence=dict(evidence), severity=Severity.WARNING,
        ))
    return Outcome(summary, findings, evidence)


PROBE = Probe("loss-at-init", "Loss at initialisation", run, requires="nothing")
