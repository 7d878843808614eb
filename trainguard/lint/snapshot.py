"""Copies of a trace's state, so that a class's `__init__` run once can start each of its methods' traces.

Every method analysed on its own starts from an instance its class's `__init__` built with unknown
arguments: the same statements, the same events, the same state each time (nothing else has run
yet in that trace). `copied` makes an independent copy of what such a run left (the interpreter's
state and the rules' per-trace memory) in which the syntax tree is shared, mutable objects are new
(each once: what was one object stays one object) and immutable ones are kept as they are when
nothing inside them changed. A value of a type it does not know stops it (`Uncopyable`): the
`__init__` is then run again, as before.
"""

from __future__ import annotations

import ast
import dataclasses
from collections import defaultdict
from typing import Any

from trainguard.lint.values import State, Thing

_KEPT = frozenset((str, int, float, bool, type(None), bytes, complex, type(Ellipsis)))
# Per dataclass type: its field names and whether it is frozen (None: not a dataclass we copy).
_DATACLASSES: dict[type, tuple[tuple[str, ...], bool] | None] = {}


class Uncopyable(Exception):
    """A value `copied` does not know how to copy (the caller falls back to running the code again)."""


def copied(value: Any, memo: dict[int, Any]) -> Any:
    """A copy of `value` as described above; `memo` maps the id of each object copied so far to its copy."""
    kind = type(value)
    if kind in _KEPT or isinstance(value, ast.AST):
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    if kind is tuple or kind is frozenset:
        inner = [item if type(item) in _KEPT else copied(item, memo) for item in value]
        result = value if all(new is old for new, old in zip(inner, value)) else kind(inner)
        memo[key] = result
        return result
    if kind is dict or kind is defaultdict:
        table: dict = defaultdict(value.default_factory) if kind is defaultdict else {}
        memo[key] = table
        for item_key, item in value.items():
            table[item_key if type(item_key) in _KEPT else copied(item_key, memo)] = item if type(item) in _KEPT else copied(item, memo)
        return table
    if kind is Thing:
        thing = Thing.__new__(Thing)
        memo[key] = thing
        thing.__dict__.update({name: item if type(item) in _KEPT else copied(item, memo) for name, item in value.__dict__.items()})
        return thing
    if kind is State:
        state = State()
        memo[key] = state
        state.facts, state.vars = copied(value.facts, memo), copied(value.vars, memo)
        return state
    if kind is list:
        items: list = []
        memo[key] = items
        items.extend(item if type(item) in _KEPT else copied(item, memo) for item in value)
        return items
    if kind is set:
        members: set = set()
        memo[key] = members
        members.update(item if type(item) in _KEPT else copied(item, memo) for item in value)
        return members
    return _copied_dataclass(value, kind, key, memo)


def _copied_dataclass(value: Any, kind: type, key: int, memo: dict[int, Any]) -> Any:
    if kind not in _DATACLASSES:
        plain = dataclasses.is_dataclass(kind) and not hasattr(kind, "__slots__")
        _DATACLASSES[kind] = (tuple(field.name for field in dataclasses.fields(kind)), kind.__dataclass_params__.frozen) if plain else None  # type: ignore[attr-defined]
    shape = _DATACLASSES[kind]
    if shape is None:
        raise Uncopyable(kind.__name__)
    names, frozen = shape
    if len(value.__dict__) != len(names):
        raise Uncopyable(f"{kind.__name__} holds attributes besides its fields")
    attributes = value.__dict__
    new: Any
    if frozen:
        fields = [copied(attributes[name], memo) for name in names]
        if all(new is attributes[name] for new, name in zip(fields, names)):
            memo[key] = value  # immutable, and nothing inside it changes: the very object
            return value
        new = object.__new__(kind)
        memo[key] = new
    else:
        new = object.__new__(kind)
        memo[key] = new
        fields = [copied(attributes[name], memo) for name in names]
    for name, item in zip(names, fields):
        object.__setattr__(new, name, item)
    return new
