"""TG301 unregistered-module: layers kept in a plain list/dict/tuple attribute of an nn.Module.

Such layers are invisible to `parameters()`, `to(device)`, `state_dict()` and `train()/eval()`:
the optimizer never updates them and checkpoints lose them. Structural check of each module
class: `self.x = [nn.Linear(...), ...]` (or a comprehension, or `self.x = []` filled by
`self.x.append(Layer(...))`), unless the class later wraps it (`nn.ModuleList(self.x)`).
"""

from __future__ import annotations

import ast

from trainguard.lint.rules import LintRule
from trainguard.lint.script import Script, walk
from trainguard.lint.vocabulary import PARAMETER_LAYERS, torch_nn_class

CONTAINERS = (ast.List, ast.Tuple, ast.Dict, ast.ListComp, ast.DictComp, ast.Set, ast.GeneratorExp)
REGISTERING = {"ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict"}


def _self_attribute(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


class UnregisteredModule(LintRule):
    """TG301, at the statement that puts layers into the container."""

    codes = ("TG301",)
    triggers = ()  # a check of the file's classes, in no trace

    def check_script(self, script: Script) -> None:
        """Check every nn.Module class of the file."""
        for name, info in script.classes.items():
            if script.is_module_class(name):
                self._check_class(script, info.node)

    def _builds_trainable(self, script: Script, node: ast.AST) -> bool:
        for call in walk(node):
            if not isinstance(call, ast.Call):
                continue
            qualname = script.imports.qualname(call.func)
            layer = torch_nn_class(qualname) if qualname else None
            if layer == "Parameter" or (layer and PARAMETER_LAYERS.match(layer) and layer not in REGISTERING):
                return True
            if isinstance(call.func, ast.Name) and script.is_module_class(call.func.id):
                return True
            if qualname and qualname.startswith("torchvision.models."):
                return True
        return False

    def _check_class(self, script: Script, cls: ast.ClassDef) -> None:
        holding: dict[str, ast.AST] = {}  # attribute -> first statement putting layers into it
        containers: set[str] = set()  # attributes assigned a plain list/dict/tuple
        registered: set[str] = set()  # attributes assigned anything else, e.g. nn.ModuleList(self.blocks)
        for node in walk(cls):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    attribute = _self_attribute(target)
                    if attribute is not None and isinstance(node.value, CONTAINERS):
                        containers.add(attribute)
                        if self._builds_trainable(script, node.value):
                            holding.setdefault(attribute, node)
                    elif attribute is not None:
                        registered.add(attribute)
                    elif isinstance(target, ast.Subscript) and _self_attribute(target.value) and self._builds_trainable(script, node.value):
                        holding.setdefault(_self_attribute(target.value), node)  # type: ignore[arg-type]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("append", "extend", "insert"):
                attribute = _self_attribute(node.func.value)
                if attribute is not None and any(self._builds_trainable(script, arg) for arg in node.args):
                    holding.setdefault(attribute, node)
        for attribute, node in holding.items():
            if attribute in containers and attribute not in registered:
                self.report(
                    "TG301",
                    node,
                    f"self.{attribute} holds layers with parameters in a plain Python container: parameters(), "
                    f"to(device), state_dict() and train()/eval() do not see them",
                    evidence={"attribute": attribute, "class": cls.name},
                )
