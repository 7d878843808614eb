"""TG105 params-not-in-optimizer: a model trained by backward() whose parameters no optimizer updates.

Decided at the end of a trace: the models whose outputs reached a backward() with gradients
enabled, against the parameter sources of every optimizer made in the trace
(`model.parameters()`, `model.fc.parameters()`, lists, `itertools.chain`, param-group dicts,
`add_param_group`). Silent when any optimizer's parameters cannot be traced, and in files that
freeze parameters (`requires_grad = False`): leaving frozen ones out is deliberate.
"""

from __future__ import annotations

from trainguard.findings import Severity
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Thing, related


def coverage(model: Thing, sources: set) -> str:
    """"full", "partial" (only some submodules) or "none"."""
    result = "none"
    for module, path in sources:
        if module is model and not path or _contains(module, model):
            return "full"
        if related(module, model):
            result = "partial"
    return result


def _contains(outer: Thing, inner: Thing) -> bool:
    seen = inner.facts.get("parent")
    while seen is not None:
        if seen[0] is outer:
            return True
        seen = seen[0].facts.get("parent")
    return False


class ParamsNotInOptimizer(LintRule):
    """TG105, at the (first) optimizer's construction."""

    codes = ("TG105",)
    # Only backpropagated models are checked, against optimizers made in the trace (see is_optimizer).
    triggers = tuple(frozenset(("backward", maker)) for maker in ("optim", "optimizers", "transformers"))

    def end_trace(self, ctx: TraceView) -> None:
        """Compare the models trained in this trace with the optimizers' parameter sources."""
        if ctx.script.freezes_parameters:
            return
        optimizers = [entry.event.thing for entry in ctx.events("created") if entry.event.thing.kind == "optimizer"]
        if not optimizers or any(optimizer.facts.get("sources") is None for optimizer in optimizers):
            return
        sources = set().union(*(optimizer.facts["sources"] for optimizer in optimizers))
        if any(not module.known for module, _ in sources):
            return
        backpropagated = ctx.backpropagated()
        trained: dict[int, Thing] = {}
        for entry in ctx.events("forward"):
            forward = entry.event
            if forward.root and forward.output.graph and forward.node in backpropagated and forward.model.known:
                trained.setdefault(id(forward.model), forward.model)
        for model in trained.values():
            found = coverage(model, sources)
            if found == "full":
                continue
            where = optimizers[0].node
            if found == "partial":
                self.report(
                    "TG105",
                    where,
                    f"{model.name} is trained by backward() but the optimizer gets only some of its submodules' "
                    f"parameters: the others receive gradients and never change",
                    evidence={"model": model.name, "model_line": getattr(model.node, "lineno", None)},
                    severity=Severity.WARNING,
                )
            else:
                self.report(
                    "TG105",
                    where,
                    f"{model.name} (line {getattr(model.node, 'lineno', '?')}) is trained by backward() but its "
                    f"parameters are in no optimizer: they never change",
                    evidence={"model": model.name, "model_line": getattr(model.node, "lineno", None)},
                )
