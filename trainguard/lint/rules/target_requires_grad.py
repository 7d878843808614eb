"""TG309 target-requires-grad, static face: a loss target computed, with gradients on, from the
same model as the prediction and not detached (a TD target `r + gamma * q(s').max(1)[0]`).

The target must certainly carry a graph (computed with gradients enabled, no `.detach()`,
`.item()` or `torch.no_grad()` on the way) and both it and the prediction must come from a
forward of one model known to hold parameters, which an optimizer made in the trace certainly
updates (its parameter sources are known and include the model or a part of it). A target made by
another model (a frozen teacher, a target network), or by a model no optimizer trains (a frozen
feature extractor whose outputs are compared, as in a perceptual loss), is not this rule's: its
gradients change no parameter.
"""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.torch_semantics import parameters_known
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Tensor, Thing, must_all, related, tensors
from trainguard.lint.vocabulary import LOSS_CLASSES, LOSS_FUNCTIONS

GRAD_ON = frozenset((True,))


class TargetRequiresGrad(LintRule):
    """TG309, at the loss call."""

    codes = ("TG309",)
    triggers = tuple(frozenset((name,)) for name in (*LOSS_FUNCTIONS, *LOSS_CLASSES))

    def on_loss_call(self, event: ev.LossCall, ctx: TraceView) -> None:
        if not must_all(event.target, lambda value: isinstance(value, Tensor) and value.graph):
            return
        models: dict[object, Thing] = {}
        for entry in ctx.events("forward"):
            forward = entry.event
            if forward.grad == GRAD_ON and parameters_known(forward.model, ctx.script) is True:
                models[forward.node] = forward.model
        target_models = {id(models[o]): models[o] for t in tensors(event.target) for o in t.origins if o in models}
        shared = [
            model for t in tensors(event.prediction) for o in t.origins
            if o in models and id(model := models[o]) in target_models
        ]
        trained = [model for model in shared if _optimized(model, ctx)]
        if trained:
            name = trained[0].name
            self.report(
                "TG309",
                event.node,
                f"the loss target is computed from {name} with gradients on and not detached: the loss also "
                f"trains {name} through its target (a moving target the optimizer chases)",
                evidence={"model": name},
            )


def _optimized(model: Thing, ctx: TraceView) -> bool:
    """Some optimizer made in the trace certainly holds parameters of `model`."""
    for entry in ctx.events("created"):
        thing = entry.event.thing
        sources = thing.facts.get("sources") if thing.kind == "optimizer" else None
        if sources and any(module.known and related(module, model) for module, _ in sources):
            return True
    return False
