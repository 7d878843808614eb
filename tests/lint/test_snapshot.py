"""A method's trace may start from a copy of what its class's `__init__` left in an earlier trace:
it must be the very trace that running the `__init__` again gives."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from trainguard.lint.engine import _rule_classes
from trainguard.lint.interpreter import InitRun, Interpreter
from trainguard.lint.reporter import Reporter
from trainguard.lint.script import Script
from trainguard.lint.snapshot import Uncopyable, copied
from trainguard.lint.trace_state import BudgetExceeded
from trainguard.lint.values import State, Tensor, Thing

TESTS = Path(__file__).resolve().parents[1]
SOURCES = sorted((TESTS / "lint" / "fixtures").rglob("*.py")) + sorted((TESTS / "runtime" / "fixtures").glob("*.py"))


def test_copies_share_the_tree_and_keep_one_object_one() -> None:
    node = ast.parse("x = 1").body[0]
    model = Thing("model", "net", node, facts={"escaped": False})
    state = State({("mode", model): frozenset(("train",))}, {("var", 0, "net"): frozenset((model,))})
    tensor = Tensor(frozenset(("softmax",)), frozenset((node,)), True)
    copy_state, copy_model, copy_tensor, copy_list = copied((state, model, tensor, [model, model]), {})
    assert copy_model is not model and copy_model.node is node and copy_model.facts == model.facts
    assert copy_model.facts is not model.facts
    assert copy_list == [copy_model, copy_model]
    assert copy_state.vars[("var", 0, "net")] == frozenset((copy_model,))
    assert copy_state.facts == {("mode", copy_model): frozenset(("train",))}
    assert copy_tensor is tensor  # immutable, and nothing inside it is copied: the same object


def test_an_unknown_type_is_not_copied() -> None:
    with pytest.raises(Uncopyable):
        copied({"x": [object()]}, {})


def _traces(script: Script, node: ast.ClassDef, built: dict[str, InitRun] | None) -> tuple[list, list]:
    """Every method of the class on its own, in order, reported as the engine does (one reporter)."""
    reporter = Reporter(script.path, frozenset(code for cls in _rule_classes() for code in cls.codes), {})
    traces = []
    for method in node.body:
        if not isinstance(method, ast.FunctionDef) or method.name == "__init__" or not method.args.args:
            continue
        interpreter = Interpreter(script, [cls(reporter) for cls in _rule_classes()], budget=3000)
        try:
            interpreter.run_function(method, node.name, built)
            ended = True
        except BudgetExceeded:
            ended = False
        # As a multiset: the order of events about several objects at once follows sets of objects
        # hashed by identity, which no two runs of the interpreter need to share.
        events = Counter((entry.name, type(entry.event).__name__, getattr(entry.event, "node", None), entry.loops, entry.controls) for entry in interpreter.log)
        traces.append((method.name, ended, interpreter.budget, events))
    return traces, [(f.code, f.line, f.column, f.message, f.severity) for f in reporter.findings]


def test_a_method_started_from_a_copied_init_traces_as_with_init_run_again() -> None:
    restored = 0
    for path in SOURCES:
        source = path.read_text("utf-8")
        script = Script(path.name, source, ast.parse(source), path.parent)
        for node in script.all_classes:
            built: dict[str, InitRun] = {}
            assert _traces(script, node, built) == _traces(script, node, None), f"{path.name}: {node.name}"
            restored += max(len([m for m in node.body if isinstance(m, ast.FunctionDef) and m.name != "__init__"]) - 1, 0) if built.get(node.name) else 0
    assert restored >= 20  # the fixtures' trainers, models and modules with several methods
