"""TG701 unsafe-torch-load and TG702 incomplete-checkpoint."""

from __future__ import annotations

import ast
import re

from trainguard.lint import events as ev
from trainguard.lint.interpreter import Interpreter
from trainguard.lint.rules import LintRule
from trainguard.lint.values import Thing, things

COUNTER_KEY = re.compile(r"epoch|step|iter", re.I)


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _state_of(values: frozenset, kind: str) -> bool:
    return any(t.facts["owner"].kind == kind for t in things(values, "state_dict"))


class Checkpoints(LintRule):
    """TG701 at `torch.load(..., weights_only=False)`; TG702 at `torch.save` of a checkpoint dict."""

    codes = ("TG701", "TG702")

    def on_call(self, event: ev.Call, ctx: Interpreter) -> None:
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

    def on_save(self, event: ev.Save, ctx: Interpreter) -> None:
        dicts = things(event.obj, "dict")
        if not dicts or len(dicts) != len(event.obj) or not re.search(r"optim", ctx.script.source, re.I):
            return
        for checkpoint in dicts:
            if not self._incomplete(checkpoint):
                return
        keys = sorted(str(key) for key in dicts[0].facts["entries"])
        self.report(
            "TG702",
            event.node,
            "this checkpoint saves the model and the training progress but not the optimizer state: "
            "a resumed run restarts the optimizer's moments and step counts",
            evidence={"keys": keys},
        )

    @staticmethod
    def _incomplete(checkpoint: Thing) -> bool:
        entries = checkpoint.facts["entries"]
        if checkpoint.facts.get("escaped") or "**" in entries:
            return False
        names = [str(key) for key in entries]
        has_model = any(_state_of(values, "model") for values in entries.values()) or any("model" in name.lower() for name in names)
        has_counter = any(COUNTER_KEY.search(name) for name in names)
        has_optimizer = any("optim" in name.lower() for name in names) or any(_state_of(values, "optimizer") for values in entries.values())
        return has_model and has_counter and not has_optimizer
