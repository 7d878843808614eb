"""Which functions lint analyses on their own: those whose code (with the file code they call)
uses what an enabled rule needs to report there."""

from __future__ import annotations

import ast

from trainguard.lint.engine import _rule_classes, lint_source
from trainguard.lint.script import Script

SOURCE = '''\
import torch
from torch.nn import DataParallel as DP


def plain(x):
    """A docstring that names the optimizer step does not count."""
    return x + 1


def train_step(model, optimizer, batch):
    model(batch).sum().backward()
    optimizer.step()


def loop(model, optimizer, loader):
    for batch in loader:
        train_step(model, optimizer, batch)


def backward(ctx, grad):
    return grad


def wrap(model):
    return DP(model)


class Trainer:
    def __init__(self, model):
        self.model = model
        self.criterion = torch.nn.CrossEntropyLoss()

    def evaluate(self, batch, target):
        return self.criterion(self.model(batch), target)


class Plain:
    def __init__(self, width):
        self.width = width

    def describe(self):
        return f"{self.width} wide"
'''


def relevant_names(source: str) -> set[str]:
    script = Script("train.py", source, ast.parse(source))
    groups = frozenset(group for cls in _rule_classes() for group in cls.trace_triggers(script) or ())
    return {f.name for f in script.all_functions if id(f) in script.relevant_functions(groups)}


def test_only_functions_that_use_a_rules_words_or_call_one_that_does_are_analysed_alone() -> None:
    # `loop` only calls `train_step`; `wrap` uses DataParallel under another name; `evaluate` calls
    # a loss its class's __init__ made (an entry method starts from an instance __init__ built, so
    # __init__ counts too); `plain` names the step in prose, `backward` only defines the word.
    assert relevant_names(SOURCE) == {"train_step", "loop", "wrap", "__init__", "evaluate"}


def test_lines_are_counted_as_the_parser_counts_them() -> None:
    """A form feed is no line break for the parser: the function's text must still be its own."""
    source = "import torch\n\x0c\ndef f(model, optimizer, loader):\n    for x in loader:\n        model(x).sum().backward()\n        optimizer.step()\n"
    assert [(f.code, f.line) for f in lint_source(source).findings] == [("TG101", 6)]


def test_a_name_with_an_identifier_character_that_is_no_word_character_is_followed_too() -> None:
    """`‿` (a connector, like `_`) may be part of a Python name but is no word character for `re`:
    such names are looked for with the plain alternation."""
    source = "import torch\n\n\ndef step\u203fhelper(model, optimizer):\n    model(1).sum().backward()\n    optimizer.step()\n\n\ndef loop(model, optimizer):\n    step\u203fhelper(model, optimizer)\n"
    assert relevant_names(source) == {"step\u203fhelper", "loop"}
