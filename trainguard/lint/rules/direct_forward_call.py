"""TG205 direct-forward-call: `model.forward(x)` skips the module's hooks (and trainguard's, DDP's, ...)."""

from __future__ import annotations

import ast

from trainguard.findings import Severity
from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule, in_test_code
from trainguard.lint.script import Script
from trainguard.lint.trace_view import TraceView


class DirectForwardCall(LintRule):
    """TG205, at `x.forward(...)` on a model.

    Silent in test code, where the model was just built to check its outputs (no hooks, DDP or
    compile wrapper exists on it). `self.forward(...)` inside the module's own method is an info:
    the method is itself called directly (`model.forward_with_cfg(...)`), so DDP and compile
    wrappers are out of the picture either way, and only hooks registered on the module differ.
    `super().forward(...)` is never reported (it is how a subclass extends forward).
    """

    codes = ("TG205",)
    triggers = (frozenset(("forward",)),)

    @classmethod
    def trace_triggers(cls, script: Script) -> tuple[frozenset[str], ...]:
        """Without an attribute named `forward` in the code a trace can run (the file and the
        sibling modules it imports from) no `x.forward(...)` exists to report: the word alone
        (`# the inner forward.`) then makes no function worth analysing for this rule."""
        return cls.triggers if "forward" in script.attribute_names else ()

    def on_method_call(self, event: ev.MethodCall, ctx: TraceView) -> None:
        if event.method != "forward" or not any(thing.kind == "model" for thing in event.receivers):
            return
        if in_test_code(ctx):
            return
        receiver = event.node.func.value  # type: ignore[attr-defined]
        if isinstance(receiver, ast.Name) and receiver.id == "self":
            self.report(
                "TG205",
                event.node,
                "self.forward(...) skips the hooks registered on this module, which self(...) would run "
                "(profilers, feature extraction, trainguard's guard)",
                evidence={"receiver": "self"},
                severity=Severity.INFO,
            )
            return
        shown = ast.unparse(receiver) if isinstance(receiver, (ast.Name, ast.Attribute)) else "model"
        self.report(
            "TG205",
            event.node,
            f"{shown}.forward(...) bypasses {shown}(...): forward/backward hooks, DDP's gradient "
            f"synchronisation and torch.compile wrappers do not run",
            evidence={"receiver": shown},
        )
