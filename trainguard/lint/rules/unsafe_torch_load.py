"""TG701 unsafe-torch-load: `torch.load(..., weights_only=False)` unpickles arbitrary objects."""

from __future__ import annotations

import ast

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.script import Script
from trainguard.lint.trace_view import TraceView


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


class UnsafeTorchLoad(LintRule):
    """TG701 at `torch.load(..., weights_only=False)`."""

    codes = ("TG701",)
    triggers = (frozenset(("load",)),)

    @classmethod
    def trace_triggers(cls, script: Script) -> tuple[frozenset[str], ...]:
        """Only a literal `weights_only=False` is reported."""
        return cls.triggers if "weights_only" in script.source else ()

    def on_call(self, event: ev.Call, ctx: TraceView) -> None:
        if event.qualname != "torch.load":
            return
        node = event.node
        weights_only = _keyword(node, "weights_only")
        path = node.args[0] if node.args else _keyword(node, "f")
        if isinstance(path, ast.Constant) and isinstance(path.value, str) and path.value.endswith(".safetensors"):
            return
        # Without weights_only the default is safe from PyTorch 2.6 on; the linter cannot know the
        # version the script will run with, so only the explicit opt-out is reported.
        if isinstance(weights_only, ast.Constant) and weights_only.value is False:
            self.report(
                "TG701",
                node,
                "torch.load(..., weights_only=False) unpickles arbitrary objects: a crafted checkpoint runs code on load",
            )
