"""Overfit one batch: can the set-up memorise a single batch?

A model, loss and optimizer that train at all drive the loss on one fixed batch down quickly; if
they cannot, a longer run will not either (wrong loss input, learning rate far off, a frozen or
disconnected model). The probe trains a fresh copy with a fresh optimizer on the probes' batch
(the loader's batch size, at most 64 samples) for up to `STEPS` steps and passes as soon as the
loss falls to `FACTOR` times its first value. Not falling at all is an error (TG402); falling too
little is a warning.
"""

from __future__ import annotations

import math

from trainguard.doctor.batches import sample_count
from trainguard.doctor.context import ProbeContext
from trainguard.doctor.probe import Outcome, Plot, Probe, make_finding
from trainguard.findings import Severity

STEPS = 200
FACTOR = 0.1
# "Did not decrease at all": the best loss stayed within 1 % of the first.
NO_PROGRESS = 0.99


def run(context: ProbeContext) -> Outcome:
    """Train a fresh copy on one batch until the loss falls by `FACTOR` or `STEPS` run out."""
    model = context.fresh_model()
    optimizer = context.fresh_optimizer(model)
    batch = context.batch()
    losses: list[float] = []
    for _ in range(STEPS):
        losses.append(context.train_step(model, optimizer, batch))
        if not math.isfinite(losses[-1]) or losses[-1] <= FACTOR * losses[0] or context.remaining() <= 0:
            break
    first, last, best = losses[0], losses[-1], min(losses)
    evidence = {"first_loss": round(first, 5), "last_loss": round(last, 5), "best_loss": round(best, 5),
                "steps": len(losses), "batch_size": sample_count(batch[0]), "factor": FACTOR}
    plot = Plot("line", "overfit one batch: training loss", [(step, loss) for step, loss in enumerate(losses)],
                x_label="step", log_y=True)
    place = context.setup_place
    if not math.isfinite(last):
        finding = make_finding("non-finite-loss", f"the loss became {last} at step {len(losses) - 1} while overfitting one batch",
                               fix="lower the learning rate, or clip gradients; look for log(0) or division by zero in the loss",
                               place=place, evidence=evidence)
        return Outcome(f"the loss became {last} at step {len(losses) - 1}", [finding], evidence, plot=plot)
    if last <= FACTOR * first:
        return Outcome(f"loss fell from {first:.4g} to {last:.4g} (<= {FACTOR}x) in {len(losses)} steps", [], evidence, plot=plot)
    if len(losses) < STEPS:
        return Outcome(f"the time budget ran out after {len(losses)} steps (loss {first:.4g} -> {last:.4g})",
                       [], evidence, plot=plot, skipped=True)
    size = evidence["batch_size"]
    if best >= NO_PROGRESS * first:
        rule, severity = "loss-not-decreasing", Severity.ERROR
        message = f"the loss on one batch of {size} samples did not decrease in {STEPS} steps (first {first:.4g}, best {best:.4g}): nothing is learning"
        fix = "check that the optimizer holds the model's parameters, that the loss gets logits, and the learning rate"
    else:
        rule, severity = "overfit-batch", Severity.WARNING
        message = (f"in {STEPS} steps the loss on one batch of {size} samples fell only from {first:.4g} to {last:.4g} "
                   f"({last / first:.2f}x; a set-up that trains memorises one batch to <= {FACTOR}x)")
        fix = "raise the learning rate, give the model more capacity, or look at gradient-flow for layers that do not learn"
    finding = make_finding(rule, message, fix=fix, place=place, evidence=evidence, severity=severity)
    return Outcome(f"loss {first:.4g} -> {last:.4g} in {len(losses)} steps (target <= {FACTOR}x)", [finding], evidence, plot=plot)


PROBE = Probe("overfit-batch", "Overfit one batch", run)
