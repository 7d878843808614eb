"""TG206 dropout-active-in-eval, static face: functional dropout in a module's `forward` that
ignores the module's mode.

`F.dropout(x, p)` defaults to `training=True`, and `F.scaled_dot_product_attention` applies its
`dropout_p` whatever the mode: unlike `nn.Dropout`, neither reads `self.training`, so
`model.eval()` leaves them on. Reported in the `forward` of an nn.Module class of the file when
the call passes no `training` argument (or a `dropout_p` that is not a literal 0) and the
`forward` never looks at a mode at all (no `.training` attribute and no `training` / `train`
parameter): a forward that does (`if self.training: ...`, `training=self.training`,
`p = self.p if self.training else 0.0`) chose its behaviour per mode, and is left alone.
"""

from __future__ import annotations

import ast

from trainguard.lint.rules import LintRule
from trainguard.lint.script import Script, walk

DROPOUT_FUNCTIONS = frozenset(
    f"torch.nn.functional.{name}"
    for name in ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")
)
ATTENTION = "torch.nn.functional.scaled_dot_product_attention"
_MODE_PARAMETERS = frozenset(("training", "train", "is_training"))


def _argument(call: ast.Call, name: str, position: int) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return call.args[position] if len(call.args) > position else None


def _is_zero(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value in (0, 0.0) and not isinstance(node.value, bool)


def _reads_mode(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The function looks at a mode: `<anything>.training`, or takes a training flag."""
    arguments = function.args
    names = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
    if names & _MODE_PARAMETERS:
        return True
    return any(isinstance(node, ast.Attribute) and node.attr == "training" for node in walk(function))


class DropoutActiveInEval(LintRule):
    """TG206, at the dropout / attention call inside a mode-blind `forward`."""

    codes = ("TG206",)
    triggers = ()  # a check of the file's classes, in no trace

    def check_script(self, script: Script) -> None:
        """Check the `forward` of every nn.Module class of the file."""
        for name, info in script.classes.items():
            forward = info.methods.get("forward")
            if forward is None or not script.is_module_class(name) or _reads_mode(forward):
                continue
            for node in walk(forward):
                if isinstance(node, ast.Call):
                    self._check_call(script, name, node)

    def _check_call(self, script: Script, class_name: str, call: ast.Call) -> None:
        if any(keyword.arg is None for keyword in call.keywords) or any(isinstance(a, ast.Starred) for a in call.args):
            return  # **kwargs / *args may carry the mode
        qualname = script.imports.qualname(call.func)
        if qualname in DROPOUT_FUNCTIONS:
            if _argument(call, "training", 2) is not None or _is_zero(_argument(call, "p", 1)):
                return
            function = qualname.rsplit(".", 1)[-1]
            self.report(
                "TG206",
                call,
                f"{class_name}.forward calls F.{function} without training=self.training: it defaults to "
                f"training=True, so dropout stays on after model.eval() (noisy evaluation and predictions)",
                evidence={"class": class_name, "function": function},
            )
        elif qualname == ATTENTION:
            dropout_p = _argument(call, "dropout_p", 4)
            if dropout_p is None or _is_zero(dropout_p):
                return
            self.report(
                "TG206",
                call,
                f"{class_name}.forward passes dropout_p={ast.unparse(dropout_p)} to scaled_dot_product_attention "
                f"whatever the mode: attention dropout stays on after model.eval()",
                evidence={"class": class_name, "function": "scaled_dot_product_attention"},
            )
