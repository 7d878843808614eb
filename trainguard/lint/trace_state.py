"""The state of one trace that every part of the interpreter shares: frames, loops, the abstract `State`,
the event log and the rules' handlers; `emit` hands an event to the rules."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, Iterable

from trainguard.lint.script import FunctionNode, Script
from trainguard.lint.values import State, Thing

GRAD = ("grad",)
AUTOCAST = ("autocast",)


class BudgetExceeded(Exception):
    """The file needs more abstract steps than a lint run may spend on it: stop this trace."""


@dataclass
class Frame:
    """One function activation: its variables live in the state under `("var", id, name)`."""

    ident: int
    function: FunctionNode | None
    self_thing: Thing | None = None
    in_module_method: bool = False
    returns: list[tuple[frozenset, State]] = field(default_factory=list)


@dataclass
class LoopExits:
    """States that leave a loop pass early: by `break` or `continue`."""

    breaks: list[State] = field(default_factory=list)
    continues: list[State] = field(default_factory=list)


@dataclass(frozen=True)
class Logged:
    """An event as it happened: with the loops and branches (`if`/`match`) around it, outermost first."""

    name: str
    event: Any
    loops: tuple[ast.AST, ...]
    controls: tuple[ast.AST, ...]


class TraceState:
    """What a trace knows; the base of `Interpreter`'s mixins."""

    def __init__(self, script: Script, rules: Iterable[Any], budget: int = 20000) -> None:
        self.script = script
        self.rules = list(rules)
        self.handlers: dict[str, list[Callable]] = defaultdict(list)
        for rule in self.rules:
            for event in _handled_events(rule.__class__):
                self.handlers[event].append(getattr(rule, f"on_{event}"))
        self.budget = budget
        self.state = State()
        self.frames: list[Frame] = []
        self.loops: list[ast.AST] = []
        self.controls: list[ast.AST] = []
        self.loop_exits: list[LoopExits] = []
        self.call_stack: list[FunctionNode] = []
        self.guessed: dict[tuple, Thing] = {}
        self.next_frame = 0
        self.forward_tags: dict[str, frozenset] = {}
        # Objects handed to code we cannot see: any later unseen call may use them again.
        self.escaped: set[Thing] = set()
        self.escaped_origins: set[ast.AST] = set()  # forward calls whose outputs unseen code received
        # Forward calls whose outputs were scored: compared (==, .eq), given to a loss or to a metric.
        self.scored_origins: set[ast.AST] = set()
        self.loop_frames: dict[int, int] = {}  # loop node -> the frame it runs in
        self.log: list[Logged] = []

    # ---- events -------------------------------------------------------------------------------
    def emit(self, name: str, event: Any) -> None:
        """Log an event with its loops and branches, then hand it to the rules that subscribe to it."""
        self.log.append(Logged(name, event, tuple(self.loops), tuple(self.controls)))
        for handler in self.handlers.get(name, ()):
            handler(event, self)


@cache
def _handled_events(rule_class: type) -> tuple[str, ...]:
    """The events a rule class subscribes to: its `on_<event>` methods."""
    return tuple(name[3:] for name in dir(rule_class) if name.startswith("on_"))
