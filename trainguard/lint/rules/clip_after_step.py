"""TG113 clip-after-step: gradient clipping after `optimizer.step()` (the step already used the unclipped gradients)."""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.interpreter import Interpreter
from trainguard.lint.rules import LintRule


class ClipAfterStep(LintRule):
    """TG113: TODO say at which event it decides, and from what."""

    codes = ("TG113",)

    def on_call(self, event: ev.Call, ctx: Interpreter) -> None:
        # Subscribe to the interpreter's events (trainguard.lint.events) and call
        # self.report("TG113", node, message, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("TG113 lint rule")
