"""Checkpoint round-trip: does a saved checkpoint restore the model and the optimizer exactly?

A fresh copy trains `STEPS` steps (so the optimizer has state: momentum, Adam moments); its
`{"model": state_dict, "optimizer": state_dict}` is saved with `torch.save` and loaded with
`torch.load(weights_only=True)` (the safe way, the default since PyTorch 2.6) into another fresh
copy and a fresh optimizer. The restored model must give the trained one's eval-mode outputs
(state that training changes but `state_dict()` does not hold breaks this), and one more step of
both, from the same random state, must leave identical parameters (optimizer state that does not
round-trip breaks this). Equality is to `TOLERANCE` relative to the values' scale.
"""

from __future__ import annotations

import io

import torch

from trainguard.doctor.batches import forward
from trainguard.doctor.compare import differ, parameters_of
from trainguard.doctor.context import ProbeContext
from trainguard.doctor.probe import Outcome, Probe, make_finding
from trainguard.doctor.setup import describe_error
from trainguard.findings import Severity

STEPS = 2
TOLERANCE = 1e-6


def _step(context: ProbeContext, model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    torch.manual_seed(seed)  # the same dropout masks for the original and the restored copy
    context.train_step(model, optimizer, context.batch())


def _problem(context: ProbeContext, message: str, fix: str, evidence: dict[str, object] | None = None) -> Outcome:
    finding = make_finding("checkpoint", message, fix=fix, place=context.model_place(), evidence=evidence,
                           severity=Severity.ERROR)
    return Outcome(message, [finding], evidence or {})


def run(context: ProbeContext) -> Outcome:
    """Save after a few steps, load into fresh copies, compare outputs and the next step."""
    trained = context.fresh_model()
    optimizer = context.fresh_optimizer(trained)
    for seed in range(STEPS):
        _step(context, trained, optimizer, seed)
    buffer = io.BytesIO()
    torch.save({"model": trained.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    size = buffer.tell()
    buffer.seek(0)
    try:
        state = torch.load(buffer, weights_only=True)
    except Exception as error:
        return _problem(context, f"the checkpoint cannot be loaded with torch.load(weights_only=True): {describe_error(error)}",
                        "keep only tensors, numbers, strings and containers of them in state_dict() (encode other state as tensors)")
    restored = context.fresh_model()
    restored_optimizer = context.fresh_optimizer(restored)
    try:
        restored.load_state_dict(state["model"])
        restored_optimizer.load_state_dict(state["optimizer"])
    except Exception as error:
        return _problem(context, f"loading the checkpoint into a fresh copy raised {describe_error(error)}",
                        "make state_dict() and load_state_dict() agree (the same modules are created in __init__)")
    inputs, _ = context.batch()
    with torch.no_grad():
        trained.eval()
        restored.eval()
        outputs_differ, output_difference = differ(forward(trained, inputs), forward(restored, inputs), TOLERANCE)
    evidence: dict[str, object] = {"checkpoint_bytes": size, "output_max_difference": output_difference}
    if outputs_differ:
        return _problem(context, f"a fresh copy loaded from the checkpoint predicts differently from the trained model "
                                 f"(max |difference| {output_difference:.3g}): some state that training changes is not in state_dict()",
                        "register that state: nn.Parameter / register_buffer for tensors, nn.ModuleList for modules", evidence)
    trained.train()
    restored.train()
    _step(context, trained, optimizer, STEPS)
    _step(context, restored, restored_optimizer, STEPS)
    parameters_differ, parameter_difference = differ(parameters_of(trained), parameters_of(restored), TOLERANCE)
    evidence["next_step_max_difference"] = parameter_difference
    if parameters_differ:
        return _problem(context, f"the step after loading differs from the step without a checkpoint (max |difference| "
                                 f"{parameter_difference:.3g}): the optimizer's state does not round-trip",
                        "keep all optimizer state in optimizer.state / param_groups (what state_dict() saves)", evidence)
    return Outcome(f"model and optimizer restore exactly ({size:,} bytes, loaded with weights_only=True)", [], evidence)


PROBE = Probe("checkpoint", "Checkpoint round-trip", run)
