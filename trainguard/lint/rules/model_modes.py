"""TG201 eval-mode-missing, TG202 train-mode-missing, TG203 no-grad-missing: forward passes in the wrong mode.

All three read the possibilities recorded at each root forward (a model called from the
training program, not from inside another module): train/eval mode, grad mode, and whether
some backward() of the trace used its output. Dropout/BatchNorm must be certainly present for
TG201/TG202 (a file class building them, `nn.Dropout`, a torchvision ResNet, ...).

TG201 is an error only when the evaluation's output is scored: compared (`==`, `.eq`), given to a
loss, or to a call named like a metric (`accuracy`, `f1_score`, `metric.update`); an unscored one
(a GAN's sample for a picture, a printed tensor) is an info.

A forward whose output is thrown away (`model(x)` as a statement) is not an evaluation: under
no_grad in train mode it is BatchNorm recalibration (what `torch.optim.swa_utils.update_bn`
does), so TG201 stays silent there. TG203 needs a model known to have parameters (a module of the
file that builds no weight-holding layer, such as a transform or a metric, records no graph of its
own; one whose layers are built out of sight is not reported either).
"""

from __future__ import annotations

from trainguard.findings import Severity
from trainguard.lint.rules import LintRule
from trainguard.lint.script import Script
from trainguard.lint.torch_semantics import parameters_known
from trainguard.lint.trace_view import TraceView

TRAIN, EVAL = frozenset(("train",)), frozenset(("eval",))
GRAD_ON, GRAD_OFF = frozenset((True,)), frozenset((False,))



class ModelModes(LintRule):
    """TG201/TG202/TG203, at the forward call."""

    codes = ("TG201", "TG202", "TG203")
    triggers = tuple(frozenset((word,)) for word in ("no_grad", "inference_mode", "set_grad_enabled", "enable_grad", "backward"))

    @classmethod
    def trace_triggers(cls, script: Script) -> tuple[frozenset[str], ...]:
        """Without a Dropout/BatchNorm-like layer named in the file only TG203 can report, and in a
        function's trace grad mode is known to be on only under these."""
        if script.may_build_mode_dependent():
            return cls.triggers
        return (frozenset(("enable_grad",)), frozenset(("set_grad_enabled",)))

    def end_trace(self, ctx: TraceView) -> None:
        """Judge every root forward of the trace by its mode, grad mode and use."""
        backpropagated = ctx.backpropagated()
        for entry in ctx.events("forward"):
            forward = entry.event
            if not forward.root:
                continue
            name = forward.model.name
            mode_dependent = forward.model.facts.get("mode_dependent") is True
            discarded = id(forward.node) in ctx.script.discarded_calls
            scored = forward.node in ctx.scored_origins
            if forward.grad == GRAD_OFF and forward.mode == TRAIN and mode_dependent and not discarded:
                self.report(
                    "TG201",
                    forward.node,
                    f"{name} is evaluated under no_grad while still in train mode: its Dropout/BatchNorm layers "
                    f"act as in training (random units dropped, batch statistics used and updated)"
                    + ("" if scored else "; its output is not scored here (a sample or a visualisation?)"),
                    evidence={"model": name, "scored": scored},
                    severity=None if scored else Severity.INFO,
                )
            elif forward.mode == EVAL and forward.node in backpropagated and forward.grad != GRAD_OFF and mode_dependent:
                self.report(
                    "TG202",
                    forward.node,
                    f"{name} is trained while in eval mode: Dropout is off and BatchNorm uses frozen statistics "
                    f"(an earlier evaluation called eval() and nothing called train() again)",
                    evidence={"model": name},
                )
            elif forward.grad == GRAD_ON and forward.node not in backpropagated and not ctx.script.freezes_parameters:
                # In train mode the forward must also not reach unseen code, which might backpropagate it.
                if forward.mode == TRAIN and forward.node in ctx.escaped_origins or forward.mode not in (TRAIN, EVAL):
                    continue
                if parameters_known(forward.model, ctx.script) is not True:
                    continue  # no weights known: no graph of its own (its inputs' graphs are their makers' findings)
                if forward.mode == TRAIN and mode_dependent and not discarded:
                    self.report(
                        "TG201",
                        forward.node,
                        f"{name} runs in train mode and nothing backpropagates the result: an evaluation with "
                        f"Dropout/BatchNorm acting as in training (no model.eval())"
                        + ("" if scored else "; its output is not scored here (a sample or a visualisation?)"),
                        evidence={"model": name, "scored": scored},
                        severity=None if scored else Severity.INFO,
                    )
                self.report(
                    "TG203",
                    forward.node,
                    f"{name} is evaluated with gradients enabled and no backward() uses the result: an autograd "
                    f"graph is built for nothing (memory and time)",
                    evidence={"model": name},
                )
