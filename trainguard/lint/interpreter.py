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

from trainguard.lint.python_semantics import PythonSemantics, _is_static
from trainguard.lint.script import FunctionNode
from trainguard.lint.torch_semantics import TorchSemantics
from trainguard.lint.trace_state import AUTOCAST, GRAD
from trainguard.lint.tracking import RuleTracking


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

    def run_function(self, function: FunctionNode, class_name: str | None) -> None:
        """One function or method on its own, called from code we cannot see: all inputs unknown."""
        self._push_frame(None)  # the module's globals: unknown here
        self_thing = None
        if class_name is not None and function.args.args and not _is_static(function):
            self_thing = self._instance(class_name, None, run_init=function.name != "__init__")
        self._call_function(function, (), {}, self_thing, None)
