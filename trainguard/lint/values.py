"""What the interpreter knows about a name: abstract objects, tensor facts, and the flow state.

The interpreter runs a script's code paths abstractly. A name is bound to a *set* of possible
values (two branches may bind different optimizers); an unknown value is `TOP`. Objects the
training loop is made of (optimizers, models, schedulers, scalers, loaders, ...) are `Thing`s
with an identity; tensors are `Tensor` facts compared by value.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Callable, Iterable, Iterator

# "Could be anything": a member of a value set or of a state fact that makes every must-check fail.
TOP = "<top>"
_NOTHING_KNOWN = frozenset((TOP,))


@dataclass(eq=False)
class Thing:
    """An object of the training program: `kind` says what it is (optimizer, model, ...).

    Identity is the object itself, so aliases (`opt = optimizer`) share it. `known` is False for
    things only guessed from a name (a function parameter called `optimizer`): their state
    starts unknown. `facts` holds kind-specific knowledge (a loss function's reduction, a
    loader's shuffle flag, an optimizer's parameter sources, ...).
    """

    kind: str
    name: str
    node: ast.AST | None = None
    known: bool = True
    facts: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name}>"


@dataclass(frozen=True)
class Tensor:
    """Facts about a tensor value.

    `tags` are what produced it, seen through shape-only operations (`softmax`, `sigmoid`,
    `log_softmax`, `mean_loss`, ("scaled_by", scaler)); `origins` are the forward-call nodes
    it was computed from (may-information); `graph` is True when it certainly carries an
    autograd graph.
    """

    tags: frozenset = frozenset()
    origins: frozenset = frozenset()
    graph: bool = False


@dataclass(frozen=True)
class Params:
    """Parameters for an optimizer: `(module thing, attribute path)` sources, e.g. `(model, ("fc",))`."""

    sources: frozenset


Value = Any  # Thing | Tensor | Params | str (TOP)


def unknown() -> frozenset:
    """The value set that knows nothing: {TOP} (one object: sets are immutable and compared by value,
    and a join sees at once that two unknowns are the same)."""
    return _NOTHING_KNOWN


def things(values: Iterable[Value], kind: str | None = None) -> list[Thing]:
    """The `Thing`s of a value set (of one kind if given)."""
    return [v for v in values if isinstance(v, Thing) and (kind is None or v.kind == kind)]


def within(module: Thing, target: Thing) -> bool:
    """`module` is `target` or one of its parts (attribute chains made in `__init__`)."""
    seen: Thing | None = module
    while seen is not None:
        if seen is target:
            return True
        parent = seen.facts.get("parent")
        seen = parent[0] if parent else None
    return False


def related(first: Thing, second: Thing) -> bool:
    """The same module, or one holds the other."""
    return within(first, second) or within(second, first)


def tensors(values: Iterable[Value]) -> list[Tensor]:
    """The tensor facts of a value set."""
    return [v for v in values if isinstance(v, Tensor)]


def merge_tensors(values: Iterable[Value], keep_tags: bool = False) -> Tensor:
    """One tensor computed from several: origins add up; tags survive only if asked and shared."""
    found = tensors(values)
    origins = frozenset().union(*(t.origins for t in found)) if found else frozenset()
    tags = frozenset.intersection(*(t.tags for t in found)) if keep_tags and found else frozenset()
    return Tensor(tags=tags, origins=origins, graph=any(t.graph for t in found))


def must_all(values: frozenset, predicate: Callable[[Any], bool]) -> bool:
    """True when the set is non-empty, has no TOP, and every member satisfies `predicate`."""
    return bool(values) and TOP not in values and all(predicate(v) for v in values)


class State:
    """The abstract state at one program point: key -> frozenset of possibilities.

    Keys are tuples. Variables `("var", frame, name)` and object attributes `("attr", thing, name)`
    live in `vars`; everything else (modes, grad mode, the rules' facts under `(code, thing, ...)`)
    in `facts`, which stays small so that forgetting an object is cheap. A key absent on one side
    of a join is unknown there, so the joined key holds TOP.
    """

    __slots__ = ("vars", "facts")

    def __init__(self, facts: dict | None = None, variables: dict | None = None) -> None:
        self.facts: dict = facts if facts is not None else {}
        self.vars: dict = variables if variables is not None else {}

    def copy(self) -> State:
        """An independent copy (for one branch of an `if`)."""
        return State(dict(self.facts), dict(self.vars))

    def _table(self, key: tuple) -> dict:
        return self.vars if key[0] in ("var", "attr") else self.facts

    def get(self, key: tuple) -> frozenset:
        """The possible values under `key` ({TOP} when nothing is known)."""
        return self._table(key).get(key, unknown())

    def set(self, key: tuple, values: Iterable[Value]) -> None:
        """Replace the values under `key` (a strong update)."""
        self._table(key)[key] = frozenset(values)

    def must(self, key: tuple, fact: Any) -> bool:
        """The fact certainly holds: it is the only possibility."""
        return self.facts.get(key) == frozenset((fact,))

    def forget(self, forgotten: AbstractSet[Thing]) -> None:
        """Unseen code may have used these objects: everything known about them is now unknown."""
        top = unknown()
        for key in self.facts:
            if len(key) > 1 and key[1] in forgotten:
                self.facts[key] = top

    def keys_about(self, namespace: str) -> Iterator[tuple]:
        """The keys of one namespace, e.g. one rule's code."""
        return (key for key in self.facts if key[0] == namespace)

    @staticmethod
    def join(states: Iterable[State | None]) -> State | None:
        """Union of the reachable states (None = unreachable)."""
        live = [s for s in states if s is not None]
        if not live:
            return None
        if len(live) == 1:
            return live[0].copy()
        return State(_join_tables([s.facts for s in live]), _join_tables([s.vars for s in live]))


def _join_tables(tables: list[dict]) -> dict:
    """Key by key union; a key missing from a table joins TOP. Branches start from copies of one
    state, so most keys hold the very same set on every side: those are kept without a union."""
    joined = dict(tables[0])
    top = unknown()
    for table in tables[1:]:
        if table == joined:
            continue  # compared without a Python loop: the sets are mostly the same objects
        for key, values in table.items():
            mine = joined.get(key)
            if mine is None:
                joined[key] = values | top  # missing from the tables joined so far
            elif mine is not values and mine != values:
                joined[key] = mine | values
        if len(joined) != len(table):
            for key in joined.keys() - table.keys():
                joined[key] = joined[key] | top
    return joined
