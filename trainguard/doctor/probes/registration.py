"""Registration: does `model.parameters()` return every trainable weight, and does the optimizer
hold all of them?

Modules kept in a plain `list`, `dict` or `tuple` attribute are invisible to PyTorch: their
parameters are not returned by `model.parameters()` (so no optimizer trains them), not saved in
`state_dict()`, not moved by `.to()`, and they do not follow `.train()` / `.eval()`. The probe
walks every registered module's plain attributes (containers nested up to three deep) for modules
and parameters that the model does not register (TG301), then builds the optimizer from the
model's parameters and lists the trainable ones it does not hold (TG105). Frozen parameters are
counted; a model with nothing trainable fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from torch import nn

from trainguard.doctor.context import ProbeContext
from trainguard.doctor.places import attribute_place
from trainguard.doctor.probe import Outcome, Probe, make_finding
from trainguard.findings import Severity

_MAX_DEPTH = 3


def _walk(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Items of plain containers (not `nn.ModuleList`/`ModuleDict`: those are modules, registered)."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}[{key!r}]", depth + 1)
    elif depth > 0:
        yield path, value


@dataclass
class HiddenAttribute:
    """A plain-container attribute of a registered module holding unregistered modules/parameters."""

    owner: type
    attribute: str
    container: str
    items: list[tuple[str, nn.Module | nn.Parameter]] = field(default_factory=list)

    @property
    def parameter_count(self) -> int:
        """Parameters held by the hidden items (shared ones counted once)."""
        parameters = {
            id(parameter): parameter.numel()
            for _, item in self.items
            for parameter in (item.parameters() if isinstance(item, nn.Module) else [item])
        }
        return sum(parameters.values())


def hidden_attributes(model: nn.Module) -> list[HiddenAttribute]:
    """Modules and parameters held in plain containers and not registered with `model`."""
    registered_modules = {id(module) for module in model.modules()}
    registered_parameters = {id(parameter) for parameter in model.parameters()}
    hidden = []
    for owner in model.modules():
        for attribute, value in vars(owner).items():
            if attribute.startswith("_"):  # _modules, _parameters, _buffers: the registration itself
                continue
            found = HiddenAttribute(type(owner), attribute, type(value).__name__)
            for path, item in _walk(value, attribute):
                unregistered_module = isinstance(item, nn.Module) and id(item) not in registered_modules
                unregistered_parameter = isinstance(item, nn.Parameter) and id(item) not in registered_parameters
                if unregistered_module or unregistered_parameter:
                    found.items.append((path, item))
            if found.items:
                hidden.append(found)
    return hidden


def run(context: ProbeContext) -> Outcome:
    """Find modules and parameters hidden from the model, and trainable ones the optimizer misses."""
    model = context.fresh_model()
    findings = []
    hidden = hidden_attributes(model)
    for found in hidden:
        name = f"{found.owner.__name__}.{found.attribute}"
        items = ", ".join(f"{path} ({type(item).__name__})" for path, item in found.items)
        findings.append(make_finding(
            "unregistered-module",
            f"{name} is a plain {found.container} holding {len(found.items)} module(s) or parameter(s) that the model "
            f"does not register ({items}): {found.parameter_count:,} parameters that model.parameters() misses, so no "
            "optimizer trains them, state_dict() does not save them and .eval()/.to() do not reach them",
            fix=f"store them in nn.ModuleList / nn.ModuleDict (or nn.ParameterList / ParameterDict), not a plain {found.container}",
            place=attribute_place(found.owner, found.attribute),
            evidence={"attribute": name, "hidden": len(found.items), "hidden_parameters": found.parameter_count},
        ))

    named = list(model.named_parameters())
    trainable = [(name, parameter) for name, parameter in named if parameter.requires_grad]
    frozen = sum(parameter.numel() for _, parameter in named if not parameter.requires_grad)
    optimizer = context.fresh_optimizer(model)
    held = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
    missing = [name for name, parameter in trainable if id(parameter) not in held]
    evidence = {
        "parameters": sum(parameter.numel() for _, parameter in named),
        "trainable": sum(parameter.numel() for _, parameter in trainable),
        "frozen": frozen,
        "in_optimizer": sum(parameter.numel() for _, parameter in trainable if id(parameter) in held),
        "hidden_parameters": sum(found.parameter_count for found in hidden),
    }
    if missing:
        message = (f"the optimizer holds none of the {len(trainable)} trainable parameter tensors it was given: "
                   "does the optimizer factory ignore its argument?") if len(missing) == len(trainable) else (
                   f"{len(missing)} of {len(trainable)} trainable parameter tensors are in no optimizer param group "
                   f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): they never change")
        findings.append(make_finding(
            "params-not-in-optimizer", message,
            fix="build the optimizer from the parameters it is given (`lambda params: SGD(params, ...)`), or freeze "
                "what must not train with requires_grad_(False)",
            place=context.setup_place, evidence={"missing": missing[:20], "missing_count": len(missing)},
        ))
    if not trainable:
        findings.append(make_finding(
            "registration", f"the model has no trainable parameters ({evidence['parameters']:,} parameters, all frozen)",
            fix="unfreeze the layers to train with requires_grad_(True)", place=context.model_place(),
            severity=Severity.ERROR,
        ))
    summary = (f"{evidence['trainable']:,} trainable parameters ({frozen:,} frozen), "
               f"{evidence['in_optimizer']:,} in the optimizer, {evidence['hidden_parameters']:,} hidden in plain containers")
    return Outcome(summary, findings, evidence)


PROBE = Probe("registration", "Registration: every parameter registered and in the optimizer", run, requires="nothing")
