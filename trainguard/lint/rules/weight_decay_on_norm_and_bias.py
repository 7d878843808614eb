"""TG116 weight-decay-on-norm-and-bias: weight decay applied to normalization weights and biases.

Judged where an optimizer is built over a whole model, `Optimizer(model.parameters(), ...)`, with
a literal weight decay above 0, when the model certainly holds a normalization layer with weights:
built in the file from `torch.nn` layers (a file class's body, the classes it builds, or the
`nn.Sequential(...)` call itself). As at runtime, biases alone and an optimizer's default decay
(AdamW's 0.01) are not reported; param groups, a decay held in a variable and models built out of
sight are not judged. Info, or a warning from the runtime's `norm_decay_warning` threshold on
(many codebases decay them on purpose).
"""

from __future__ import annotations

import ast

from trainguard.findings import Severity
from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.script import Script
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Thing
from trainguard.lint.vocabulary import torch_nn_class
from trainguard.runtime.thresholds import Thresholds

NORMALIZATION = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm", "RMSNorm")
BIASED = ("Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")


def _false(node: ast.Call, keyword: str) -> bool:
    return any(k.arg == keyword and isinstance(k.value, ast.Constant) and k.value.value is False for k in node.keywords)


def decayed_kinds(script: Script, node: ast.AST, seen: set[str] | None = None) -> set[str]:
    """"norm" and/or "bias" when the code under `node` certainly builds such parameters."""
    seen = set() if seen is None else seen
    kinds: set[str] = set()
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        qualname = script.imports.qualname(call.func)
        layer = torch_nn_class(qualname) if qualname else None
        if layer in NORMALIZATION and not _false(call, "elementwise_affine") and not _false(call, "affine"):
            kinds.add("norm")
        elif layer in BIASED and not _false(call, "bias") and not (layer == "Linear" and len(call.args) > 2):
            kinds.add("bias")
        elif isinstance(call.func, ast.Name) and call.func.id in script.classes and call.func.id not in seen:
            seen.add(call.func.id)
            kinds |= decayed_kinds(script, script.classes[call.func.id].node, seen)
    return kinds


def _model_node(script: Script, model: Thing) -> ast.AST | None:
    """Where the model's layers are written: its file class, or the constructor call itself."""
    node = model.node
    if not isinstance(node, ast.Call):
        return None
    if isinstance(node.func, ast.Name) and node.func.id in script.classes:
        return script.classes[node.func.id].node
    return node if torch_nn_class(script.imports.qualname(node.func) or "") else None


def _decay(node: ast.Call) -> float | None:
    """The call's literal weight decay, None when not given or not a literal."""
    given = next((k.value for k in node.keywords if k.arg == "weight_decay"), None)
    if isinstance(given, ast.Constant) and isinstance(given.value, (int, float)) and not isinstance(given.value, bool):
        return float(given.value)
    return None


class WeightDecayOnNormAndBias(LintRule):
    """TG116, where the optimizer is made."""

    codes = ("TG116",)
    triggers = (frozenset(("optim",)),)  # where an optimizer is made (`optim.AdamW(`, an imported `AdamW(`)

    @classmethod
    def trace_triggers(cls, script: Script) -> tuple[frozenset[str], ...]:
        """Only an optimizer made with a literal `weight_decay=` is reported: without the keyword in
        the code a trace can run, no function is worth analysing for this rule."""
        return cls.triggers if script.mentions("weight_decay") else ()

    def on_created(self, event: ev.Created, ctx: TraceView) -> None:
        optimizer = event.thing
        node = event.node
        if optimizer.kind != "optimizer" or not isinstance(node, ast.Call):
            return
        params = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "params"), None)
        if not (isinstance(params, ast.Call) and isinstance(params.func, ast.Attribute) and params.func.attr == "parameters"):
            return
        sources = optimizer.facts.get("sources") or frozenset()
        if len(sources) != 1:
            return
        ((model, path),) = sources
        name = str(optimizer.facts.get("qualname", "")).rsplit(".", 1)[-1]
        decay = _decay(node)
        if path or not model.known or decay is None or decay <= 0:
            return
        layers = _model_node(ctx.script, model)
        kinds = decayed_kinds(ctx.script, layers) if layers is not None else set()
        if "norm" not in kinds:
            return
        what = " and ".join(("normalization weights" if kind == "norm" else "biases") for kind in sorted(kinds, reverse=True))
        self.report(
            "TG116",
            node,
            f"{name} applies weight_decay={decay:g} to every parameter of {model.name}, its {what} included",
            evidence={"weight_decay": decay, "model": model.name},
            severity=None if decay >= Thresholds().norm_decay_warning else Severity.INFO,
        )
