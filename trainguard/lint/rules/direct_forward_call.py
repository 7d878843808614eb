"""TG205 direct-forward-call: `model.forward(x)` skips the module's hooks (and trainguard's, DDP's, ...)."""

from __future__ import annotations

import ast

from trainguard.lint import events as ev
from trainguard.lint.interpreter import Interpreter
from trainguard.lint.rules import LintRule


class DirectForwardCall(LintRule):
    """TG205, at `x.forward(...)` on a model."""

    codes = ("TG205",)
    triggers = (frozenset(("forward",)),)

    def on_method_call(self, event: ev.MethodCall, ctx: Interpreter) -> None:
        if event.method != "forward" or not any(thing.kind == "model" for thing in event.receivers):
            return
        receiver = event.node.func.value  # type: ignore[attr-defined]
        shown = ast.unparse(receiver) if isinstance(receiver, (ast.Name, ast.Attribute)) else "model"
        self.report(
            "TG205",
            event.node,
            f"{shown}.forward(...) bypasses {shown}(...): forward/backward hooks, DDP's gradient "
            f"synchronisation and torch.compile wrappers do not run",
            evidence={"receiver": shown},
        )
