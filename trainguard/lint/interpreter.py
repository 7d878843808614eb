"""An abstract interpreter for training scripts: runs the code paths of one file without running them.

It walks statements in program order, follows calls into the file's own functions and the
methods of its classes (a trainer's `fit` calling `_train_step`; `self.model(x)`; `super()`;
classmethods), and into the definitions it imports from a module beside it (`from model import
GPT`, see `Script`), binds aliases
(`opt = optimizer`), treats both branches of an `if` as possible and runs each loop body twice
(the second pass starts where the first ended: what a training loop's next step sees). It
recognizes the operations of a training program and tells the rules about them as events
(`trainguard.lint.events`); rules keep their facts in the shared `State` so branches and loops
join them. Code it cannot see (an imported helper receiving the optimizer) makes what it knew
about those objects unknown: rules then stay silent.

`Interpreter` composes its parts by concern, over the trace's shared `TraceState`
(`lint/trace_state.py`): Python semantics (`lint/python_semantics.py`), PyTorch library semantics
(`lint/torch_semantics.py`) and the bookkeeping only particular rules read (`lint/tracking.py`).
Rules see it only through `TraceView` (`lint/trace_view.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from trainguard.lint.python_semantics import PythonSemantics, _is_static
from trainguard.lint.script import FunctionNode
from trainguard.lint.snapshot import Uncopyable, copied
from trainguard.lint.torch_semantics import TorchSemantics
from trainguard.lint.trace_state import AUTOCAST, GRAD
from trainguard.lint.tracking import RuleTracking
from trainguard.lint.values import Thing


class Interpreter(PythonSemantics, TorchSemantics, RuleTracking):
    """Runs one trace (one entry point of a file) and feeds its events to the rules."""

    # ---- entry points -------------------------------------------------------------------------
    def run_module(self) -> None:
        """The script as `python file.py` runs it: gradients enabled, no autocast."""
        frame = self._push_frame(None)
        self.state.set(GRAD, (True,))
        self.state.set(AUTOCAST, (None,))
        self.block(self.script.tree.body)
        self.frames.remove(frame)

    def run_function(self, function: FunctionNode, class_name: str | None, built: dict[str, InitRun] | None = None) -> None:
        """One function or method on its own, called from code we cannot see: all inputs unknown.

        A method starts from an instance its class's `__init__` built; `built` keeps, per class, a
        copy of what the first such run left, which the file's other methods start from."""
        self._push_frame(None)  # the module's globals: unknown here
        self_thing = None
        if class_name is not None and function.args.args and not _is_static(function):
            if function.name != "__init__" and built is not None:
                self_thing = self._built_instance(class_name, built)
            else:
                self_thing = self._instance(class_name, None, run_init=function.name != "__init__")
        self._call_function(function, (), {}, self_thing, None)

    def _built_instance(self, class_name: str, built: dict[str, InitRun]) -> Thing:
        """`_instance(class_name, None)` with its `__init__` run: the run itself the first time, a copy
        of its outcome after that. The run is the same in every such trace (the first thing that
        happens in it), so the copy holds the same state, events and rule memory, and the budget is
        charged the same; the findings it made were made the first time. A run that would not fit
        in this trace's budget is run (to the same BudgetExceeded)."""
        run = built.get(class_name)
        if run is not None and run.saved is not None and run.spent <= self.budget:
            fields, rule_fields, thing = copied(run.saved, dict(run.kept))
            self.__dict__.update(fields)
            for rule, saved in zip(self.rules, rule_fields):
                rule.__dict__.update(saved)
            self.budget -= run.spent
            return thing
        start = self.budget
        thing = self._instance(class_name, None)
        if run is None:
            fields = {name: value for name, value in self.__dict__.items() if name not in _NOT_TRACE_STATE}
            rule_fields = [{name: value for name, value in rule.__dict__.items() if name != "reporter"} for rule in self.rules]
            memo: dict[int, object] = {}
            try:
                saved = copied((fields, rule_fields, thing), memo)
            except (Uncopyable, RecursionError):
                saved = None  # something only a run makes, or too deep to copy: run it every time
            # The immutable parts kept as they were (most of the event log) stay so in every copy.
            built[class_name] = InitRun(start - self.budget, saved, {key: value for key, value in memo.items() if id(value) == key})
        return thing


@dataclass
class InitRun:
    """What one run of a class's `__init__` at the start of a trace spent and left (None: not copied)."""

    spent: int
    saved: tuple | None
    kept: dict[int, object]  # id -> the object, for the immutable parts of `saved` shared as they are


# The interpreter's attributes that are not the trace's state: its file, rules and their handlers, its budget.
_NOT_TRACE_STATE = frozenset(("script", "rules", "handlers", "budget"))
