"""TG702 incomplete-checkpoint: a training checkpoint saved with the model and the progress but
not the optimizer state."""

from __future__ import annotations

import ast
import re
from functools import lru_cache

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule, in_test_code
from trainguard.lint.script import Script
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import TOP, Thing, things
from trainguard.lint.vocabulary import is_optimizer

COUNTER_KEY = re.compile(r"epoch|step|iter", re.I)
OPTIMIZER_KEY = re.compile(r"(^|[^a-z])opt(im)?s?([^a-z]|$)|optim|solver", re.I)
# Keys whose unseen values are something else than optimizer state: counters, the model, metrics, settings.
OTHER_KEY = re.compile(
    r"epoch|step|iter|model|state_dict|weights|net|loss|acc|metric|score|best|err|ppl|perplex|bleu|f1|val|"
    r"arg|config|cfg|hparam|hyper|setting|arch|name|version|time|date|seed|vocab|token|class|label|lr|rng|random",
    re.I,
)


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _state_of(values: frozenset, kind: str) -> bool:
    return any(t.facts["owner"].kind == kind for t in things(values, "state_dict"))


class IncompleteCheckpoint(LintRule):
    """TG702 at `torch.save` of a checkpoint dict."""

    codes = ("TG702",)
    triggers = (frozenset(("save",)),)

    @classmethod
    def trace_triggers(cls, script: Script) -> tuple[frozenset[str], ...]:
        """Only a file that mentions an optimizer can miss its state in a checkpoint."""
        return cls.triggers if "optim" in script.source or re.search(r"optim", script.source, re.IGNORECASE) else ()  # the plain test first: cheaper

    def on_save(self, event: ev.Save, ctx: TraceView) -> None:
        dicts = things(event.obj, "dict")
        if not dicts or len(dicts) != len(event.obj) or not re.search(r"optim", ctx.script.source, re.I):
            return
        if in_test_code(ctx) or _optimizers_are_stateless(ctx.script):
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
        """A training checkpoint (model state and a counter) with certainly no optimizer state in it."""
        entries = checkpoint.facts["entries"]
        if checkpoint.facts.get("escaped") or "**" in entries:
            return False
        names = [str(key) for key in entries]
        has_model = any(_state_of(values, "model") for values in entries.values()) or any("model" in name.lower() for name in names)
        has_counter = any(COUNTER_KEY.search(name) for name in names)
        return has_model and has_counter and not any(_may_hold_optimizer_state(str(key), values) for key, values in entries.items())


def _may_hold_optimizer_state(key: str, values: frozenset) -> bool:
    """An entry that is, or might be, optimizer state: named so (`opt`, `optim_state`), an
    optimizer's state_dict, a nested dict holding one, or a value built where the linter cannot
    see under a key that names nothing else."""
    if OPTIMIZER_KEY.search(key) or _state_of(values, "optimizer") or things(values, "optimizer"):
        return True
    if any(_may_hold_optimizer_state(str(k), v) for d in things(values, "dict") for k, v in d.facts["entries"].items()):
        return True
    return TOP in values and not OTHER_KEY.search(key)


@lru_cache(maxsize=4)  # asked at every save of a file's traces; the answer is the file's
def _optimizers_are_stateless(script: Script) -> bool:
    """Every optimizer the file builds is plain SGD (no momentum): there is no optimizer state to lose."""
    built = [node for node in ast.walk(script.tree) if isinstance(node, ast.Call) and is_optimizer(script.imports.qualname(node.func) or "")]
    return bool(built) and all(_plain_sgd(node, script) for node in built)


def _plain_sgd(node: ast.Call, script: Script) -> bool:
    if (script.imports.qualname(node.func) or "").rsplit(".", 1)[-1] != "SGD" or len(node.args) > 2:
        return False
    momentum = _keyword(node, "momentum")
    return (momentum is None or isinstance(momentum, ast.Constant) and momentum.value == 0) and not any(k.arg is None for k in node.keywords)
