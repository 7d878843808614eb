"""TG114 zero-grad-before-step: gradients cleared between `backward()` and `optimizer.step()` (the step applies nothing)."""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.interpreter import Interpreter
from trainguard.lint.rules import LintRule


class ZeroGradBeforeStep(LintRule):
    """TG114: TODO say at which event it decides, and from what."""

    codes = ("TG114",)

    def on_call(self, event: ev.Call, ctx: Interpreter) -> None:
        # Subscribe to the interpreter's events (trainguard.lint.events) and call
        # self.report("TG114", node, message, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("TG114 lint rule")
