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
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, Iterable

from trainguard.lint import events as ev
from trainguard.lint.names import source_text
from trainguard.lint.script import FunctionNode, Script, walk
from trainguard.lint.values import TOP, Params, State, Tensor, Thing, merge_tensors, tensors, things, unknown
from trainguard.lint.vocabulary import (
    DETACHING_BUILTINS,
    DETACHING_METHODS,
    HARMLESS_CALLS,
    HARMLESS_RECEIVERS,
    LOSS_CLASSES,
    LOSS_FUNCTIONS,
    MAP_STYLE_DATASETS,
    NO_GRAPH_RESULTS,
    PARAMETER_LAYERS,
    SHAPE_METHODS,
    TORCHVISION_MODE_DEPENDENT,
    builds_pretrained_model,
    functional_name,
    guess_kind,
    is_grad_scaler,
    is_optimizer,
    is_scheduler,
    kind_of_annotation,
    torch_nn_class,
)

GRAD = ("grad",)
AUTOCAST = ("autocast",)
MAX_DEPTH = 4
# Objects whose rule facts unseen code may change (an escaped trainer instance is not tracked itself).
ESCAPING_KINDS = frozenset(("optimizer", "model", "scheduler", "scaler", "dict", "list", "loader"))
NO_GRAD_CONTEXTS = {"torch.no_grad": False, "torch.inference_mode": False, "torch.enable_grad": True, "torch.autograd.no_grad": False, "torch.autograd.grad_mode.no_grad": False}
AUTOCAST_CONTEXTS = {
    "torch.autocast": None,
    "torch.amp.autocast": None,
    "torch.amp.autocast_mode.autocast": None,
    "torch.cuda.amp.autocast": "float16",
    "torch.cuda.amp.autocast_mode.autocast": "float16",
    "torch.cpu.amp.autocast": "bfloat16",
}
DTYPES = {"torch.float16": "float16", "torch.half": "float16", "torch.bfloat16": "bfloat16", "torch.float32": None, "torch.float": None}
# A call whose name says it measures predictions (`accuracy(out, y)`, `metric.update(...)`, `f1_score`).
METRIC_NAME = re.compile(r"accura|metric|score|precision|recall|\bf1|_f1|auroc|\bauc|\biou|psnr|ssim|bleu|perplexity", re.IGNORECASE)
COMPARISON_METHODS = {"eq", "ne", "lt", "le", "gt", "ge", "equal", "isclose", "allclose"}
CLIP_FUNCTIONS = {"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm"}
RETURNS_RECEIVER = {"to", "cuda", "cpu", "train", "eval", "half", "float", "double", "bfloat16", "requires_grad_", "share_memory", "type"}
MODEL_READ_ONLY = {"parameters", "named_parameters", "state_dict", "modules", "children", "named_modules", "named_children", "buffers", "named_buffers", "get_submodule", "extra_repr", "num_parameters", "load_state_dict", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "apply"}
# torch.distributed APIs that return (or shard in place) the module they receive: its parameters, modes and gradients.
MODULE_WRAPPERS = frozenset(("parallelize_module", "fully_shard", "FullyShardedDataParallel", "FSDP", "checkpoint_wrapper", "replicate"))
# torch containers: `self.transformer.wte(x)` on an nn.ModuleDict calls a child, it does nothing to the container.
CONTAINERS = frozenset(("ModuleDict", "ModuleList", "Sequential"))


_UNKNOWN = unknown()
# Handlers by node type, filled on first use (a dict lookup instead of a formatted getattr per node).
_STATEMENTS: dict[type, Callable] = {}
_EXPRESSIONS: dict[type, Callable] = {}


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


class Interpreter:
    """Runs one trace (one entry point of a file) and feeds its events to the rules."""

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
        self.loop_assignments: dict[int, dict[str, int]] = {}
        self.loop_frames: dict[int, int] = {}  # loop node -> the frame it runs in
        self.log: list[Logged] = []

    # ---- events -------------------------------------------------------------------------------
    def emit(self, name: str, event: Any) -> None:
        """Log an event with its loops and branches, then hand it to the rules that subscribe to it."""
        self.log.append(Logged(name, event, tuple(self.loops), tuple(self.controls)))
        for handler in self.handlers.get(name, ()):
            handler(event, self)

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

    # ---- statements ---------------------------------------------------------------------------
    def block(self, body: list[ast.stmt]) -> None:
        """Run statements in order until the path ends (return, raise, break, continue)."""
        for statement in body:
            if self.state is None:
                return
            self.budget -= 1
            if self.budget < 0:
                raise BudgetExceeded
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        """Run one statement: its `stmt_<Type>` handler, or just the expressions in it."""
        method = _STATEMENTS.get(type(node))
        if method is None:
            method = _STATEMENTS[type(node)] = getattr(type(self), f"stmt_{type(node).__name__}", None) or Interpreter._generic_statement
        method(self, node)

    def _generic_statement(self, node: ast.stmt) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.eval(child)

    def stmt_Expr(self, node: ast.Expr) -> None:
        self.eval(node.value)

    def stmt_Assign(self, node: ast.Assign) -> None:
        if self._kept_by_reassignment(node):
            return
        if _empty_literal(node.value):  # `losses = []`, `total = 0.0`: what the target kept is let go
            for target in node.targets:
                if isinstance(target, (ast.Name, ast.Attribute)):
                    self.emit("clear", ev.Clear(node, self.eval(target), source_text(target)))
        value = self.eval(node.value)
        for target in node.targets:
            self.assign(target, value, node.value)

    def stmt_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.assign(node.target, self.eval(node.value), node.value)

    def stmt_AugAssign(self, node: ast.AugAssign) -> None:
        current = self.eval(node.target)
        added = self.eval(node.value)
        combined = self._arithmetic(node.op, current | added)
        if isinstance(node.target, (ast.Name, ast.Attribute)) and self.loops and not self._assigned_in_loop(node.target, node.lineno):
            self.emit("keep", ev.Keep(node, added, source_text(node.target)))
        self.assign(node.target, combined, None)

    def stmt_Return(self, node: ast.Return) -> None:
        value = self.eval(node.value) if node.value is not None else unknown()
        self.frames[-1].returns.append((value, self.state))
        self.state = None  # type: ignore[assignment]

    def stmt_Raise(self, node: ast.Raise) -> None:
        if node.exc is not None:
            self.eval(node.exc)
        self.state = None  # type: ignore[assignment]

    def stmt_Break(self, node: ast.Break) -> None:
        if self.loop_exits:
            self.loop_exits[-1].breaks.append(self.state)
        self.state = None  # type: ignore[assignment]

    def stmt_Continue(self, node: ast.Continue) -> None:
        if self.loop_exits:
            self.loop_exits[-1].continues.append(self.state)
        self.state = None  # type: ignore[assignment]

    def stmt_Pass(self, node: ast.Pass) -> None:
        return

    stmt_Import = stmt_ImportFrom = stmt_Global = stmt_Nonlocal = stmt_Pass

    def stmt_FunctionDef(self, node: FunctionNode) -> None:
        for decorator in node.decorator_list:
            self.eval(decorator)
        self._bind_name(node.name, frozenset((Thing("function", node.name, node, facts={"def": node}),)))

    stmt_AsyncFunctionDef = stmt_FunctionDef

    def stmt_ClassDef(self, node: ast.ClassDef) -> None:
        return  # methods are entry points of their own

    def stmt_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            whole = isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Slice) and target.slice.lower is None and target.slice.upper is None
            dropped = target.value if whole else target if isinstance(target, (ast.Name, ast.Attribute)) else None  # type: ignore[attr-defined]
            if dropped is not None:
                self.emit("clear", ev.Clear(node, self.eval(dropped), source_text(dropped)))

    def stmt_If(self, node: ast.If) -> None:
        self.eval(node.test)
        self.branches(node, [node.body, node.orelse])

    def stmt_Match(self, node: ast.Match) -> None:
        self.eval(node.subject)
        bodies = [case.body for case in node.cases]
        if not any(isinstance(case.pattern, ast.MatchAs) and case.pattern.pattern is None for case in node.cases):
            bodies.append([])
        self.branches(node, bodies)

    def branches(self, node: ast.AST, bodies: list[list[ast.stmt]]) -> None:
        """Run each alternative from the same start and join where they meet again."""
        start = self.state
        outcomes = []
        self.controls.append(node)
        for body in bodies:
            self.state = start.copy()
            self.block(body)
            outcomes.append(self.state)
        self.controls.pop()
        self.state = State.join(outcomes)  # type: ignore[assignment]

    def stmt_Try(self, node: ast.Try) -> None:
        start = self.state.copy()
        self.block(node.body)
        if self.state is not None:
            self.block(node.orelse)
        after_body = self.state
        outcomes = [after_body]
        for handler in node.handlers:
            # A handler may start anywhere in the body: from its start or its end.
            self.state = State.join([start, after_body])  # type: ignore[assignment]
            if handler.name:
                self._bind_name(handler.name, unknown())
            self.block(handler.body)
            outcomes.append(self.state)
        self.state = State.join(outcomes)  # type: ignore[assignment]
        if node.finalbody:
            if self.state is None:
                self.state = start
                self.block(node.finalbody)
                self.state = None
            else:
                self.block(node.finalbody)

    stmt_TryStar = stmt_Try

    def stmt_With(self, node: ast.With) -> None:
        saved = {GRAD: self.state.get(GRAD), AUTOCAST: self.state.get(AUTOCAST)}
        for item in node.items:
            value = self.eval(item.context_expr)
            contexts = things(value, "context")
            for key, fact in ((GRAD, "grad"), (AUTOCAST, "autocast")):
                entered = {c.facts[fact] for c in contexts if fact in c.facts}
                if entered:
                    # `nullcontext() if cpu else autocast(...)`: the other possibilities keep the outer value.
                    certain = len(value) == len(contexts) and all(fact in c.facts for c in contexts)
                    self.state.set(key, entered if certain else entered | self.state.get(key))
            if item.optional_vars is not None:
                self.assign(item.optional_vars, unknown(), None)
        self.block(node.body)
        if self.state is not None:
            for key, values in saved.items():
                self.state.set(key, values)

    stmt_AsyncWith = stmt_With

    def stmt_For(self, node: ast.For) -> None:
        iterated = self.eval(node.iter)
        element = self._elements(iterated)
        self.loop(node, lambda: self.assign(node.target, element, None), iterated)

    stmt_AsyncFor = stmt_For

    def stmt_While(self, node: ast.While) -> None:
        self.loop(node, lambda: self.eval(node.test), frozenset())

    def loop(self, node: ast.For | ast.AsyncFor | ast.While, start_iteration: Callable[[], Any], iterated: frozenset) -> None:
        """Two passes over the body (the second from where the first ended); loops are assumed to run."""
        self.emit("loop_start", ev.LoopStart(node, iterated))
        self.loop_frames[id(node)] = self.frames[-1].ident
        self.loops.append(node)
        self.controls.append(node)
        exits = LoopExits()
        self.loop_exits.append(exits)
        ends: list[State | None] = []
        for _ in range(2):
            if self.state is None:
                break
            start_iteration()
            self.block(node.body)
            end = State.join([self.state, *exits.continues])
            exits.continues.clear()
            ends.append(end)
            self.state = end.copy() if end is not None else None  # type: ignore[assignment]
        self.loop_exits.pop()
        self.controls.pop()
        self.loops.pop()
        self.state = State.join(ends)  # type: ignore[assignment]
        if node.orelse and self.state is not None:
            self.block(node.orelse)
        self.state = State.join([self.state, *exits.breaks])  # type: ignore[assignment]

    # ---- assignment ---------------------------------------------------------------------------
    def assign(self, target: ast.expr, value: frozenset, source: ast.expr | None) -> None:
        """Bind a target (name, attribute, tuple, subscript) to the possible values."""
        if isinstance(target, ast.Name):
            self._bind_name(target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            # `a, b = x, y` and `model, optimizer = setup()` (returning a tuple): position by position.
            sequences = things(value, "list")
            items = sequences[0].facts.get("items") if len(sequences) == 1 and len(value) == 1 else None
            if items is not None and len(items) == len(target.elts) and not any(isinstance(e, ast.Starred) for e in target.elts):
                for sub_target, sub_value in zip(target.elts, items):
                    self.assign(sub_target, sub_value, None)
            else:
                element = self._elements(value)
                for sub_target in target.elts:
                    self.assign(sub_target.value if isinstance(sub_target, ast.Starred) else sub_target, element, None)
        elif isinstance(target, ast.Attribute):
            if target.attr == "grad" and isinstance(source, ast.Constant) and source.value is None:
                self.emit("zero_grad", ev.ZeroGrad(target, None))
            owners = self.eval(target.value)
            _name_things(value, source_text(target))
            for owner in things(owners):
                self.state.set(("attr", owner, target.attr), value)
                if owner.kind == "model":
                    for part in things(value):
                        if part.kind in ("model", "layer") and part is not owner:
                            part.facts.setdefault("parent", (owner, target.attr))
        elif isinstance(target, ast.Subscript):
            for owner in things(self.eval(target.value), "dict"):
                key = target.slice.value if isinstance(target.slice, ast.Constant) else "**"
                owner.facts["entries"][key] = value
            self.eval(target.slice)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, value, None)

    def _bind_name(self, name: str, value: frozenset, naming: bool = True) -> None:
        if naming:
            _name_things(value, name)
        self.state.set(("var", self.frames[-1].ident, name), value)

    def _elements(self, values: frozenset) -> frozenset:
        """What iterating / unpacking a value yields: loaders' batches, lists' elements, tensors' slices."""
        result: set = set()
        for value in values:
            if isinstance(value, Thing) and value.kind == "list":
                result |= value.facts.get("elements", unknown())
            elif isinstance(value, Thing) and value.kind == "dataset":
                result.add(value)
            elif isinstance(value, Tensor):
                result.add(Tensor(value.tags, value.origins, value.graph))
            else:
                result.add(TOP)
        return frozenset(result) or unknown()

    # ---- expressions --------------------------------------------------------------------------
    def eval(self, node: ast.expr | None) -> frozenset:
        """The possible values of an expression, emitting the events of the calls in it."""
        if node is None or self.state is None:
            return _UNKNOWN
        method = _EXPRESSIONS.get(type(node))
        if method is None:
            method = _EXPRESSIONS[type(node)] = getattr(type(self), f"expr_{type(node).__name__}", None) or Interpreter._generic_expression
        return method(self, node)

    def _generic_expression(self, node: ast.expr) -> frozenset:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.eval(child)
            elif isinstance(child, ast.comprehension):
                self._comprehension_part(child)
        return unknown()

    def expr_Constant(self, node: ast.Constant) -> frozenset:
        return _UNKNOWN

    def expr_BoolOp(self, node: ast.BoolOp) -> frozenset:
        for value in node.values:
            self.eval(value)
        return _UNKNOWN

    def expr_JoinedStr(self, node: ast.JoinedStr) -> frozenset:
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                self.eval(value.value)
                self.eval(value.format_spec)
        return _UNKNOWN

    def expr_Slice(self, node: ast.Slice) -> frozenset:
        self.eval(node.lower)
        self.eval(node.upper)
        self.eval(node.step)
        return _UNKNOWN

    def expr_Name(self, node: ast.Name) -> frozenset:
        return self.lookup(node.id)

    def lookup(self, name: str) -> frozenset:
        """A name's values: local, global, a file function or class, or guessed from the name."""
        facts = self.state.vars
        key = ("var", self.frames[-1].ident, name)
        if key in facts:
            return facts[key]
        if ("var", 0, name) in facts and self.frames[0].ident == 0:
            return facts[("var", 0, name)]
        if name in self.script.functions:
            return frozenset((Thing("function", name, self.script.functions[name], facts={"def": self.script.functions[name]}),))
        if name in self.script.classes:
            return frozenset((Thing("class", name, self.script.classes[name].node),))
        if name in self.script.imports.names:
            return unknown()
        return self._guess(("var", name), name)

    def _guess(self, key: tuple, name: str, kind: str | None = None) -> frozenset:
        kind = kind or guess_kind(name)
        if kind is None:
            return unknown()
        if key not in self.guessed:
            self.guessed[key] = Thing(kind, name, None, known=False)
        return frozenset((self.guessed[key],))

    def expr_Attribute(self, node: ast.Attribute) -> frozenset:
        qualname = self.script.imports.qualname(node)
        if qualname is not None:
            if qualname in DTYPES:  # a dtype held in a variable still names its precision
                return frozenset((Thing("dtype", qualname, node, facts={"dtype": DTYPES[qualname]}),))
            return _UNKNOWN
        owners = self.eval(node.value)
        result: set = set()
        for owner in owners:
            if isinstance(owner, Thing):
                key = ("attr", owner, node.attr)
                if key in self.state.vars:
                    result |= self.state.vars[key]
                elif owner.kind == "loader" and node.attr == "sampler" and owner.facts.get("sampler"):
                    result |= owner.facts["sampler"]
                elif owner.kind == "model" and node.attr == "module":
                    result.add(owner)  # `model.module` of a DDP-wrapped model: the wrapper is the model here
                else:
                    result |= self._guess((owner, node.attr), node.attr)
            elif isinstance(owner, Tensor):
                result.add(Tensor(owner.tags, owner.origins, False) if node.attr == "data" else Tensor(frozenset(), owner.origins, owner.graph))
            else:
                result.add(TOP)
        return frozenset(result) or unknown()

    def expr_BinOp(self, node: ast.BinOp) -> frozenset:
        values = self.eval(node.left) | self.eval(node.right)
        params = [v for v in values if isinstance(v, Params)]
        if params and isinstance(node.op, ast.Add):
            return frozenset((Params(frozenset().union(*(p.sources for p in params))),))
        return self._arithmetic(node.op, values)

    def _arithmetic(self, op: ast.operator, values: frozenset) -> frozenset:
        if not tensors(values):
            lists = things(values, "list")
            return frozenset(lists) if lists else unknown()
        merged = merge_tensors(values)
        return frozenset((merged,))

    def expr_Compare(self, node: ast.Compare) -> frozenset:
        """`pred == y`, `a < b`: what a metric does with a model's output (the result is a new value)."""
        for operand in (node.left, *node.comparators):
            self.score(self.eval(operand))
        return unknown()

    def score(self, values: frozenset) -> None:
        """The forward outputs in `values` are scored (an evaluation measures them)."""
        for tensor in tensors(values):
            self.scored_origins |= tensor.origins

    def expr_UnaryOp(self, node: ast.UnaryOp) -> frozenset:
        values = self.eval(node.operand)
        return frozenset((merge_tensors(values, keep_tags=False),)) if tensors(values) else unknown()

    def expr_IfExp(self, node: ast.IfExp) -> frozenset:
        self.eval(node.test)
        return self.eval(node.body) | self.eval(node.orelse)

    def expr_Subscript(self, node: ast.Subscript) -> frozenset:
        values = self.eval(node.value)
        self.eval(node.slice)
        result: set = set()
        for value in values:
            if isinstance(value, Tensor):
                result.add(value)
            elif isinstance(value, Thing) and value.kind == "list":
                result |= value.facts.get("elements", unknown())
            elif isinstance(value, Thing) and value.kind == "dict" and isinstance(node.slice, ast.Constant):
                result |= value.facts["entries"].get(node.slice.value, unknown())
            else:
                result.add(TOP)
        return frozenset(result) or unknown()

    def expr_List(self, node: ast.List | ast.Tuple | ast.Set) -> frozenset:
        values = [self.eval(e.value if isinstance(e, ast.Starred) else e) for e in node.elts]
        elements = frozenset().union(*values)
        params = _params_in(elements)
        if params is not None:
            return frozenset((params,))
        facts: dict[str, Any] = {"elements": elements}
        if not any(isinstance(e, ast.Starred) for e in node.elts):
            facts["items"] = values
        return frozenset((Thing("list", "list", node, facts=facts),))

    expr_Tuple = expr_Set = expr_List

    def expr_Dict(self, node: ast.Dict) -> frozenset:
        entries: dict = {}
        for key, value in zip(node.keys, node.values):
            if key is not None:
                self.eval(key)
            values = self.eval(value)
            entries[key.value if isinstance(key, ast.Constant) else source_text(key) if key is not None else "**"] = values
        return frozenset((Thing("dict", "dict", node, facts={"entries": entries}),))

    def expr_ListComp(self, node: ast.ListComp | ast.GeneratorExp | ast.SetComp) -> frozenset:
        iterated: set = set()
        for generator in node.generators:
            iterated |= self._comprehension_part(generator)
        element = self.eval(node.elt)
        params = _params_in(iterated)
        if params is not None:
            return frozenset((params,))
        return frozenset((Thing("list", "comprehension", node, facts={"elements": element}),))

    expr_GeneratorExp = expr_SetComp = expr_ListComp

    def expr_DictComp(self, node: ast.DictComp) -> frozenset:
        for generator in node.generators:
            self._comprehension_part(generator)
        self.eval(node.key)
        self.eval(node.value)
        return unknown()

    def _comprehension_part(self, generator: ast.comprehension) -> frozenset:
        iterated = self.eval(generator.iter)
        self.assign(generator.target, self._elements(iterated), None)
        for condition in generator.ifs:
            self.eval(condition)
        return iterated

    def expr_Lambda(self, node: ast.Lambda) -> frozenset:
        return unknown()

    def expr_NamedExpr(self, node: ast.NamedExpr) -> frozenset:
        value = self.eval(node.value)
        self.assign(node.target, value, node.value)
        return value

    def expr_Await(self, node: ast.Await) -> frozenset:
        return self.eval(node.value)

    # ---- calls --------------------------------------------------------------------------------
    def expr_Call(self, node: ast.Call) -> frozenset:
        func = node.func
        qualname = self.script.imports.qualname(func)
        args = [self.eval(a.value if isinstance(a, ast.Starred) else a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg is not None}
        for keyword in node.keywords:
            if keyword.arg is None:
                self.eval(keyword.value)
        if self.state is None:
            return unknown()
        if METRIC_NAME.search(_dotted_name(func)):
            self.score(frozenset().union(*args, *kwargs.values()) if (args or kwargs) else frozenset())
        if qualname is not None:
            self.emit("call", ev.Call(node, qualname))
            return self.api_call(node, qualname, args, kwargs)
        if isinstance(func, ast.Attribute):
            receivers = self.eval(func.value)
            return self.method_call(node, receivers, func.attr, args, kwargs)
        if isinstance(func, ast.Name) and func.id == "super" and "super" not in self.script.functions:
            return self._super(node, args)
        callees = self.eval(func)
        if isinstance(func, ast.Name) and func.id in HARMLESS_CALLS and not things(callees, "function") and not things(callees, "class"):
            return self.builtin_call(func.id, args)
        return self.call_values(node, callees, args, kwargs)

    def _super(self, node: ast.Call, args: list[frozenset]) -> frozenset:
        """`super().__init__()` / `super(Net, self).__init__()`: a proxy of the instance that looks
        methods up from the class's first base (not an escape of `self` to unseen code)."""
        frame = self.frames[-1]
        if node.args:
            class_name = node.args[0].id if isinstance(node.args[0], ast.Name) else None
            instances = things(args[1]) if len(args) > 1 else []
            instance = instances[0] if len(instances) == 1 and len(args[1]) == 1 else None
        else:
            class_name = self.script.method_owner.get(id(frame.function)) if frame.function is not None else None
            instance = frame.self_thing
        if class_name is None or instance is None:
            return _UNKNOWN
        return frozenset((Thing("super", class_name, node, facts={"instance": instance}),))

    def builtin_call(self, name: str, args: list[frozenset]) -> frozenset:
        """A builtin that only reshapes its arguments (`list`, `enumerate`, `tqdm`, `sum`, `float`, ...)."""
        if name in DETACHING_BUILTINS:
            return unknown()
        if name in ("list", "tuple", "set", "sorted", "filter", "map", "iter", "reversed", "tqdm", "trange", "enumerate", "zip"):
            joined = frozenset().union(*args) if args else frozenset()
            params = _params_in(joined)
            if params is not None:
                return frozenset((params,))
            if name in ("list", "tuple", "set", "sorted") and not args:
                return frozenset((Thing("list", name, None, facts={"elements": unknown()}),))
            return joined or unknown()
        if name == "sum" and args:
            return self._arithmetic(ast.Add(), self._elements(args[0]))
        return unknown()

    def call_values(self, node: ast.Call, callees: frozenset, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset:
        """Call whatever the callee expression evaluated to: functions, classes, models, losses."""
        results: set = set()
        for callee in callees:
            if not isinstance(callee, Thing):
                results |= self.opaque(node, args, kwargs)
            elif callee.kind == "function":
                results |= self._call_function(callee.facts["def"], args, kwargs, None, node)
            elif callee.kind == "class":
                results |= frozenset((self._instance(callee.name, node, args=args, kwargs=kwargs),))
            elif callee.kind in ("model", "layer"):
                results |= self.forward(node, callee, args)
            elif callee.kind == "loss_fn":
                loss_args = [args[0], args[1] if len(args) > 1 else kwargs.get("target", frozenset()), *args[2:]] if args else args
                results |= self.loss(node, callee.facts["family"], callee.facts.get("reduction"), loss_args)
            else:
                results |= self.opaque(node, args, kwargs)
        return frozenset(results) or unknown()

    def opaque(self, node: ast.Call, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset:
        """A call we cannot see into: whatever it received may have been changed."""
        values = frozenset().union(*args, *kwargs.values()) if (args or kwargs) else frozenset()
        if _receiver_root(node.func) not in HARMLESS_RECEIVERS:
            for thing in things(values):
                if thing.kind in ESCAPING_KINDS:
                    thing.facts["escaped"] = True
                    self.escaped.add(thing)
            if self.escaped:
                self.forget(self.escaped)
        found = tensors(values)
        if found:
            origins = merge_tensors(found).origins
            self.escaped_origins |= origins
            return frozenset((Tensor(frozenset(), origins, False),))
        return unknown()

    def forget(self, forgotten: set[Thing]) -> None:
        """Make everything known about these objects unknown (and tell the rules; not logged: frequent)."""
        self.state.forget(forgotten)
        for handler in self.handlers.get("forget", ()):
            handler(forgotten, self)

    def _call_function(
        self, function: FunctionNode, args: Iterable[frozenset], kwargs: dict[str, frozenset], self_thing: Thing | None, node: ast.Call | None, entry: bool | None = None
    ) -> frozenset:
        """Run a file function in a new frame; `node` is None for an entry point (no caller, no loops around)."""
        args = list(args)
        if function in self.call_stack or len(self.call_stack) >= MAX_DEPTH or self.script.is_generator(function):
            return self.opaque(node, args, kwargs) if node is not None else unknown()
        frame = self._push_frame(function, self_thing)
        if self_thing is not None:
            frame.in_module_method = self_thing.kind == "model"
        elif len(self.frames) > 1:
            frame.in_module_method = self.frames[-2].in_module_method
        self._bind_parameters(function, args, kwargs, self_thing, entry=node is None if entry is None else entry)
        saved_loops, saved_controls = self.loops, self.controls
        if node is None:
            self.loops, self.controls = [], []
        self.call_stack.append(function)
        saved_grad = self.state.get(GRAD) if node is not None or GRAD in self.state.facts else None
        if _decorated_no_grad(function, self.script):
            self.state.set(GRAD, (False,))
        try:
            self.block(function.body)
        finally:
            self.call_stack.pop()
            self.loops, self.controls = saved_loops, saved_controls
        returned = [value for value, _ in frame.returns]
        ends = [state for _, state in frame.returns] + [self.state]
        self.state = State.join(ends)  # type: ignore[assignment]
        self.frames.pop()
        if self.state is not None:
            if saved_grad is not None:
                self.state.set(GRAD, saved_grad)
            for key in [k for k in self.state.vars if k[0] == "var" and k[1] == frame.ident]:
                del self.state.vars[key]
        else:
            self.state = State()
        return frozenset().union(*returned) if returned else unknown()

    def _push_frame(self, function: FunctionNode | None, self_thing: Thing | None = None) -> Frame:
        frame = Frame(self.next_frame, function, self_thing)
        self.next_frame += 1
        self.frames.append(frame)
        return frame

    def _bind_parameters(self, function: FunctionNode, args: list[frozenset], kwargs: dict[str, frozenset], self_thing: Thing | None, entry: bool) -> None:
        arguments = function.args
        positional = [*arguments.posonlyargs, *arguments.args]
        if self_thing is not None and positional:
            self._bind_name(positional[0].arg, frozenset((self_thing,)), naming=False)
            positional = positional[1:]
        for index, parameter in enumerate([*positional, *arguments.kwonlyargs]):
            if index < len(positional) and index < len(args):
                value = args[index]
            elif parameter.arg in kwargs:
                value = kwargs[parameter.arg]
            elif entry:
                annotated = kind_of_annotation(self.script.imports.qualname(parameter.annotation)) if parameter.annotation is not None else None
                value = self._guess(("param", function, parameter.arg), parameter.arg, annotated)
            else:
                value = unknown()
            self._bind_name(parameter.arg, value, naming=False)
        for extra in (arguments.vararg, arguments.kwarg):
            if extra is not None:
                self._bind_name(extra.arg, unknown())

    def _instance(self, class_name: str, node: ast.AST | None, run_init: bool = True, args: list[frozenset] | None = None, kwargs: dict[str, frozenset] | None = None) -> Thing:
        is_module = self.script.is_module_class(class_name)
        thing = Thing("model" if is_module else "instance", class_name, node, known=node is not None, facts={"class": class_name})
        if is_module:
            thing.facts["mode_dependent"] = self.script.has_mode_dependent_layers(class_name)
            if node is not None:
                self.state.set(("mode", thing), ("train",))
        init = self.script.find_method(class_name, "__init__") if run_init else None
        if init is not None:
            self._call_function(init, args or [], kwargs or {}, thing, node if isinstance(node, ast.Call) else _FAKE_CALL, entry=node is None)
        if node is not None:
            self.emit("created", ev.Created(node, thing))
        return thing

    def api_call(self, node: ast.Call, qualname: str, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset:
        """A call of a library API, recognized by its qualified name."""
        first = args[0] if args else unknown()
        if is_scheduler(qualname):
            optimizers = things(kwargs.get("optimizer", first), "optimizer")
            return self._create(node, "scheduler", qualname, optimizers=tuple(optimizers))
        if is_optimizer(qualname):
            params = _params_in(kwargs.get("params", first))
            return self._create(node, "optimizer", qualname, sources=params.sources if params else None)
        if is_grad_scaler(qualname):
            return self._create(node, "scaler", qualname, enabled=_constant(node, "enabled", True))
        if qualname in NO_GRAD_CONTEXTS:
            return frozenset((Thing("context", qualname, node, facts={"grad": NO_GRAD_CONTEXTS[qualname]}),))
        if qualname == "torch.set_grad_enabled":
            enabled = _literal(node.args[0]) if node.args else None
            grad = enabled if isinstance(enabled, bool) else TOP
            self.state.set(GRAD, (grad,))  # as a statement it switches; as a context it is restored
            return frozenset((Thing("context", qualname, node, facts={"grad": grad}),))
        if qualname in AUTOCAST_CONTEXTS:
            return frozenset((Thing("context", qualname, node, facts={"autocast": self._autocast_dtype(node, qualname, kwargs.get("dtype"))}),))
        if qualname.endswith("utils.data.DataLoader") or qualname == "torch.utils.data.dataloader.DataLoader":
            return self._create(
                node,
                "loader",
                qualname,
                shuffle=self._loader_option(node, "shuffle", False),
                sampler=kwargs.get("sampler") or kwargs.get("batch_sampler"),
                dataset=kwargs.get("dataset", first),
            )
        if qualname.endswith("DistributedSampler"):
            return self._create(node, "sampler", qualname, distributed=True, shuffle=_constant(node, "shuffle", True))
        if MAP_STYLE_DATASETS.match(qualname):
            return self._create(node, "dataset", qualname, map_style=True)
        if qualname in ("torch.compile", "torch.nn.DataParallel", "torch.nn.parallel.DataParallel", "torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.data_parallel.DataParallel") or qualname.endswith("DistributedDataParallel"):
            return first
        if qualname.startswith("torch.distributed.") and qualname.rsplit(".", 1)[-1] in MODULE_WRAPPERS:
            return kwargs.get("module", first)  # the same parameters, wrapped in place or around
        if qualname in ("itertools.chain",):
            params = _params_in(frozenset().union(*args) if args else frozenset())
            return frozenset((params,)) if params else unknown()
        layer = torch_nn_class(qualname)
        if layer is not None:
            return self._nn_class(node, layer, qualname, args)
        if builds_pretrained_model(qualname):
            mode_dependent = qualname.startswith("torchvision.models.") and bool(TORCHVISION_MODE_DEPENDENT.match(qualname.rsplit(".", 1)[-1]))
            thing = self._create_thing(node, "model", qualname, mode_dependent=mode_dependent)
            # Hugging Face's from_pretrained returns the model in eval mode.
            self.state.set(("mode", thing), ("eval" if qualname.endswith(".from_pretrained") else "train",))
            return frozenset((thing,))
        last = qualname.rsplit(".", 1)[-1]
        if last in CLIP_FUNCTIONS and "torch.nn.utils" in qualname:
            params = _params_in(args[0] if args else kwargs.get("parameters", unknown()))
            self.emit("clip_grad", ev.ClipGrad(node, qualname, params.sources if params else None))
            return unknown()
        if qualname == "torch.autograd.backward":
            self.emit("backward", ev.Backward(node, first, _constant(node, "retain_graph", False)))
            return unknown()
        if qualname == "torch.save":
            self.emit("save", ev.Save(node, first))
            return unknown()
        function = functional_name(qualname)
        if function is not None:
            return self._torch_function(node, function, args, kwargs)
        if qualname.startswith("torch."):
            return frozenset((merge_tensors(frozenset().union(*args, *kwargs.values())),)) if args or kwargs else unknown()
        return self.opaque(node, args, kwargs)

    def _torch_function(self, node: ast.Call, function: str, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset:
        first = args[0] if args else kwargs.get("input", unknown())
        if function in LOSS_FUNCTIONS:
            target = args[1] if len(args) > 1 else kwargs.get("target", frozenset())
            return self.loss(node, LOSS_FUNCTIONS[function], _literal(_keyword(node, "reduction")) or "mean", [first, target, *args[2:]])
        if function in ("softmax", "log_softmax", "sigmoid"):
            return frozenset((_tagged(first, function),))
        if function in NO_GRAPH_RESULTS:
            made_from = merge_tensors(frozenset().union(*args, *kwargs.values()))
            return frozenset((Tensor(frozenset(), made_from.origins, False),))
        if function == "log" and tensors(first):
            return frozenset((_tagged(first, "log_softmax") if _must_tag(first, "softmax") else merge_tensors(first),))
        if function in ("load",):
            return unknown()
        values = frozenset().union(*args, *kwargs.values()) if args or kwargs else frozenset()
        values |= self._elements(frozenset(things(values, "list")))  # torch.cat(losses), torch.stack(log_probs)
        return frozenset((merge_tensors(values),)) if tensors(values) else unknown()

    def _nn_class(self, node: ast.Call, layer: str, qualname: str, args: list[frozenset]) -> frozenset:
        if layer in LOSS_CLASSES:
            return self._create(node, "loss_fn", qualname, family=LOSS_CLASSES[layer], reduction=_literal(_keyword(node, "reduction")) or "mean")
        if layer in ("Softmax", "LogSoftmax", "Sigmoid"):
            return self._create(node, "layer", qualname, activation={"Softmax": "softmax", "LogSoftmax": "log_softmax", "Sigmoid": "sigmoid"}[layer])
        if layer in ("Parameter",):
            return frozenset((Tensor(),))
        mode_dependent = self.script.builds_mode_dependent(node) or any(self.script.builds_mode_dependent(a) for a in node.args if isinstance(a, ast.Call))
        facts: dict[str, Any] = {"mode_dependent": mode_dependent}
        if layer == "Sequential" and node.args:
            activations = {t.facts.get("activation") for t in things(args[-1], "layer")}
            if len(activations) == 1:
                facts["activation"] = activations.pop()
        if layer == "Sequential" and node.args and all(things(arg, "layer") and len(things(arg, "layer")) == len(arg) for arg in args):
            facts["parameters"] = False  # nn.Sequential(nn.ReLU(), nn.Dropout()): no weights
        thing = self._create_thing(node, "model" if PARAMETER_LAYERS.match(layer) or layer in ("ModuleList", "ModuleDict") else "layer", qualname, **facts)
        self.state.set(("mode", thing), ("train",))
        return frozenset((thing,))

    def _create(self, node: ast.Call, kind: str, qualname: str, **facts: Any) -> frozenset:
        return frozenset((self._create_thing(node, kind, qualname, **facts),))

    def _create_thing(self, node: ast.Call, kind: str, qualname: str, **facts: Any) -> Thing:
        thing = Thing(kind, source_text(node.func), node, facts={"qualname": qualname, **facts})
        self.emit("created", ev.Created(node, thing))
        return thing

    def _loader_option(self, node: ast.Call, name: str, default: Any) -> Any:
        """A literal keyword of a call, also through `**options` of dicts whose keys are all known
        (`DataLoader(ds, **train_kwargs)`); None when it cannot be told."""
        value = _keyword(node, name)
        if value is not None:
            return value.value if isinstance(value, ast.Constant) else None
        for keyword in node.keywords:
            if keyword.arg is None:
                values = self.eval(keyword.value) if isinstance(keyword.value, (ast.Name, ast.Attribute)) else _UNKNOWN
                dicts = things(values, "dict")
                if not dicts or len(dicts) != len(values):
                    return None
                for options in dicts:
                    entries = options.facts["entries"]
                    if "**" in entries or name in entries:
                        return None  # the key may be there: its value is not a literal we keep
        return default

    def _autocast_dtype(self, node: ast.Call, qualname: str, dtype_values: frozenset | None = None) -> Any:
        enabled = _constant(node, "enabled", True)
        if enabled is False:
            return None
        dtype_node = _keyword(node, "dtype")
        if dtype_node is not None:
            dtype_name = self.script.imports.qualname(dtype_node)
            dtype = DTYPES.get(dtype_name, TOP) if dtype_name else TOP
            held = things(dtype_values or (), "dtype")
            if not dtype_name and held and len(held) == len(dtype_values or ()) and len({t.facts["dtype"] for t in held}) == 1:
                dtype = held[0].facts["dtype"]  # `amp_dtype = torch.float16` ... `autocast(..., dtype=amp_dtype)`
        elif AUTOCAST_CONTEXTS[qualname] is not None:
            dtype = AUTOCAST_CONTEXTS[qualname]
        else:
            device = _literal(node.args[0]) if node.args else _literal(_keyword(node, "device_type"))
            dtype = {"cuda": "float16", "cpu": "bfloat16"}.get(device, TOP) if isinstance(device, str) else TOP
        return dtype if enabled is True else TOP

    # ---- method calls -------------------------------------------------------------------------
    def method_call(self, node: ast.Call, receivers: frozenset, method: str, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset:
        """`receiver.method(...)`: operations of optimizers, schedulers, scalers, models, tensors."""
        known = tuple(things(receivers))
        if known:
            self.emit("method_call", ev.MethodCall(node, known, method))
        results: set = set()
        if method in ("parameters", "named_parameters") and not things(receivers, "model"):
            submodule = self._submodule_parameters(node.func.value)  # type: ignore[attr-defined]
            if submodule is not None:
                return submodule
        if method == "zero_grad":
            self.emit("zero_grad", ev.ZeroGrad(node, known if known and TOP not in receivers else None))
            return unknown()
        if method in ("zero_", "fill_") and ".grad" in source_text(node.func.value):  # type: ignore[attr-defined]
            self.emit("zero_grad", ev.ZeroGrad(node, None))
            return unknown()
        if method == "backward" and not things(receivers, "instance"):
            # `loss.backward()`, or `accelerator.backward(loss)` / `fabric.backward(loss)`.
            loss = receivers if tensors(receivers) or not args else args[0]
            self.emit("backward", ev.Backward(node, loss, _constant(node, "retain_graph", False)))
            return unknown()
        if method == "step" and not (known and all(t.kind in ("optimizer", "scheduler", "scaler") for t in known)):
            # `trainer.step()`, `self.opt.step()` with an unguessable name: maybe an optimizer step.
            if not things(receivers, "instance"):
                self.emit("optimizer_step", ev.OptimizerStep(node, (), certain=False))
        for thing in known:
            results |= self._thing_method(node, thing, method, args, kwargs)
        for value in receivers:
            if isinstance(value, Tensor):
                results |= self._tensor_method(node, value, method, args)
            elif value == TOP:
                results |= self.opaque(node, args, kwargs)
        return frozenset(results) or unknown()

    def _submodule_parameters(self, receiver: ast.expr) -> frozenset | None:
        """`model.fc.parameters()`: the parameters of a part of a model, as (model, ("fc",))."""
        path: list[str] = []
        while isinstance(receiver, ast.Attribute):
            path.insert(0, receiver.attr)
            receiver = receiver.value
            models = things(self.eval(receiver), "model") if isinstance(receiver, (ast.Name, ast.Attribute)) else []
            if models:
                return frozenset((Params(frozenset((model, tuple(path)) for model in models)),))
        return None

    def _thing_method(self, node: ast.Call, thing: Thing, method: str, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset:
        kind = thing.kind
        first = args[0] if args else unknown()
        if kind in ("instance", "model") and ("attr", thing, method) in self.state.vars and self.script.find_method(thing.facts.get("class", ""), method) is None:
            # `self.model(x)`, `self.criterion(out, y)`: calling what an attribute holds, not a method.
            return self.call_values(node, self.state.vars[("attr", thing, method)], args, kwargs)
        if kind == "optimizer":
            if method == "step":
                if args:
                    self.call_values(node, first, [], {})  # the closure runs inside step()
                self.emit("optimizer_step", ev.OptimizerStep(node, (thing,)))
            elif method == "add_param_group":
                params = _params_in(first)
                sources = thing.facts.get("sources")
                thing.facts["sources"] = sources | params.sources if params and sources is not None else None
            elif method == "state_dict":
                return frozenset((Thing("state_dict", thing.name, node, facts={"owner": thing}),))
            return unknown()
        if kind == "scheduler":
            if method == "step":
                self.emit("scheduler_step", ev.SchedulerStep(node, (thing,)))
            elif method == "state_dict":
                return frozenset((Thing("state_dict", thing.name, node, facts={"owner": thing}),))
            return unknown()
        if kind == "scaler":
            if method == "scale":
                if thing.facts.get("enabled", True) is False:
                    return first
                return frozenset(Tensor(t.tags | {("scaled_by", thing)}, t.origins, t.graph) if isinstance(t, Tensor) else t for t in first)
            if method == "step":
                self.emit("optimizer_step", ev.OptimizerStep(node, tuple(things(first, "optimizer")), certain=bool(things(first, "optimizer")), through_scaler=True))
            elif method == "unscale_":
                self.emit("scaler_unscale", ev.ScalerUnscale(node, (thing,)))
            elif method == "update":
                self.emit("scaler_update", ev.ScalerUpdate(node, (thing,)))
            return unknown()
        if kind == "list":
            if method in ("append", "extend", "insert") and args:
                value = args[-1]
                added = self._elements(value) if method == "extend" else value
                thing.facts["elements"] = thing.facts.get("elements", frozenset()) | added  # what torch.stack(lst) sees
                if self.loops and not self._assigned_in_loop(node.func.value, node.lineno):  # type: ignore[attr-defined]
                    self.emit("keep", ev.Keep(node, value, source_text(node.func.value), frozenset((thing,))))  # type: ignore[attr-defined]
            elif method == "clear":
                self.emit("clear", ev.Clear(node, frozenset((thing,)), source_text(node.func.value)))  # type: ignore[attr-defined]
            return unknown()
        if kind == "dict":
            others = things(first, "dict")
            if method == "update" and not kwargs and len(args) == 1 and others and len(others) == len(first):
                for other in others:  # `train_kwargs.update(cuda_kwargs)`: the keys of known dicts
                    for key, value in other.facts["entries"].items():
                        thing.facts["entries"][key] = thing.facts["entries"].get(key, frozenset()) | value
            elif method not in ("get", "items", "keys", "values", "copy"):
                thing.facts["entries"]["**"] = unknown()  # `.update(...)` & co: keys we cannot list
            return unknown()
        if kind == "model":
            return self._model_method(node, thing, method, args, kwargs)
        if kind in ("instance",):
            function = self.script.find_method(thing.facts.get("class", ""), method)
            if function is not None:
                return self._call_function(function, args, kwargs, thing, node)
            return self.opaque(node, [frozenset((thing,)), *args], kwargs)
        if kind == "super":
            base = self.script.first_base(thing.name)
            function = self.script.find_method(base, method) if base is not None else None
            if function is not None:
                return self._call_function(function, args, kwargs, thing.facts["instance"], node)
            return self.opaque(node, args, kwargs)  # nn.Module.__init__ & co: they touch nothing we track
        if kind == "class":
            # `GPT.from_pretrained(...)`: a classmethod runs with `cls` bound to the class, a staticmethod without.
            function = self.script.find_method(thing.name, method)
            if function is not None and _is_static(function):
                return self._call_function(function, args, kwargs, None, node)
            if function is not None and _decorated(function, "classmethod"):
                return self._call_function(function, args, kwargs, thing, node)
            return self.opaque(node, args, kwargs)
        return unknown()

    def _model_method(self, node: ast.Call, thing: Thing, method: str, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset:
        if method == "train" or method == "eval":
            mode = "eval" if method == "eval" else _literal(node.args[0]) if node.args else True
            self.state.set(("mode", thing), ("train" if mode is True else "eval" if mode in (False, "eval") else TOP,))
            return frozenset((thing,))
        if method in ("parameters", "named_parameters"):
            return frozenset((Params(frozenset(((thing, ()),))),))
        if method == "forward":
            return self.forward(node, thing, args)
        if method == "state_dict":
            return frozenset((Thing("state_dict", thing.name, node, facts={"owner": thing}),))
        if method in RETURNS_RECEIVER:
            if method == "half" or method == "to" and any(self.script.imports.qualname(a) in ("torch.float16", "torch.half") for a in [*node.args, *(k.value for k in node.keywords)]):
                thing.facts["float16"] = True  # pure float16 parameters: gradients underflow like under autocast
            return frozenset((thing,))
        if method in MODEL_READ_ONLY:
            return unknown()
        function = self.script.find_method(thing.facts.get("class", ""), method) if "class" in thing.facts else None
        if function is not None:
            return self._call_function(function, args, kwargs, thing, node)
        if torch_nn_class(thing.facts.get("qualname", "")) in CONTAINERS:
            if method in ("append", "extend", "insert", "add_module", "update"):
                for part in things(frozenset().union(*args, *kwargs.values()) if args or kwargs else frozenset()):
                    if part.kind in ("model", "layer"):
                        part.facts.setdefault("parent", (thing, method))
                return _UNKNOWN
            return self.opaque(node, args, kwargs)
        return self.opaque(node, [frozenset((thing,)), *args], kwargs)

    def _tensor_method(self, node: ast.Call, tensor: Tensor, method: str, args: list[frozenset]) -> frozenset:
        if method in DETACHING_METHODS:
            return frozenset((Tensor(tensor.tags, tensor.origins, False),)) if method in ("detach", "detach_", "data") else unknown()
        if method in SHAPE_METHODS:
            return frozenset((tensor,))
        if method in COMPARISON_METHODS:
            self.score(frozenset((tensor,)).union(*args))
        if method in NO_GRAPH_RESULTS:
            return frozenset((Tensor(frozenset(), tensor.origins, False),))
        if method in ("softmax", "log_softmax", "sigmoid"):
            return frozenset((_tagged(frozenset((tensor,)), method),))
        if method == "log" and "softmax" in tensor.tags:
            return frozenset((Tensor(frozenset(("log_softmax",)), tensor.origins, tensor.graph),))
        return frozenset((merge_tensors(frozenset((tensor,)).union(*args)),))

    # ---- forward passes and losses ------------------------------------------------------------
    def forward(self, node: ast.Call, model: Thing, args: list[frozenset]) -> frozenset:
        """A model (or activation layer) called on inputs: the output's facts, and a Forward event."""
        if model.kind == "layer" and "activation" in model.facts:
            return frozenset((_tagged(args[0] if args else unknown(), model.facts["activation"]),))
        inputs = merge_tensors(frozenset().union(*args)) if args else Tensor()
        graph = self.state.must(GRAD, True) and model.kind == "model" and parameters_known(model, self.script) is not False
        tags = self._forward_tags(model)
        output = Tensor(tags, inputs.origins | {node}, graph or inputs.graph)
        if model.kind == "model":
            root = not self.frames[-1].in_module_method
            state = self.state
            self.emit("forward", ev.Forward(node, model, output, root, state.get(("mode", model)), state.get(GRAD), state.get(AUTOCAST)))
        return frozenset((output,))

    def _forward_tags(self, model: Thing) -> frozenset:
        """What a model's output is made of: a file class whose forward returns softmax(...) gives probabilities."""
        if "activation" in model.facts:
            return frozenset((model.facts["activation"],))
        class_name = model.facts.get("class")
        if class_name is None:
            return frozenset()
        if class_name not in self.forward_tags:
            self.forward_tags[class_name] = frozenset()
            function = self.script.find_method(class_name, "forward")
            if function is not None:
                sub = Interpreter(self.script, (), budget=2000)
                sub.forward_tags = self.forward_tags
                sub._push_frame(None)
                try:
                    instance = sub._instance(class_name, None)
                    returned = sub._call_function(function, [frozenset((Tensor(),))] * len(function.args.args[1:]), {}, instance, None)
                except (BudgetExceeded, RecursionError):
                    returned = unknown()
                found = tensors(returned)
                if found and len(found) == len(returned):
                    self.forward_tags[class_name] = frozenset.intersection(*(t.tags for t in found)) & {"softmax", "log_softmax", "sigmoid"}
        return self.forward_tags[class_name]

    def loss(self, node: ast.Call, family: str, reduction: Any, args: list[frozenset]) -> frozenset:
        """A loss function applied: a LossCall event and a loss tensor (tagged when mean-reduced)."""
        prediction = args[0] if args else unknown()
        self.score(frozenset().union(*args) if args else frozenset())
        self.emit("loss_call", ev.LossCall(node, family, prediction, args[1] if len(args) > 1 else frozenset()))
        inputs = merge_tensors(frozenset().union(*args)) if args else Tensor()
        tags = frozenset(("mean_loss",)) if reduction == "mean" else frozenset()
        return frozenset((Tensor(tags, inputs.origins, inputs.graph),))

    # ---- helpers for rules --------------------------------------------------------------------
    def events(self, name: str) -> list[Logged]:
        """This trace's events of one kind, in program order."""
        return [entry for entry in self.log if entry.name == name]

    def backpropagated(self) -> frozenset:
        """Forward-call nodes whose outputs some backward() of this trace went through."""
        origins: set = set()
        for entry in self.events("backward"):
            for value in tensors(entry.event.loss):
                origins |= value.origins
        return frozenset(origins)

    def stepping_loops(self) -> set[ast.AST]:
        """Loops whose body (with the functions it calls) steps an optimizer: training loops."""
        return {loop for entry in self.events("optimizer_step") for loop in entry.loops}

    def _assigned_in_loop(self, target: ast.expr, before_line: int) -> bool:
        """The target (`losses`, `self.history`) is (re)bound inside the innermost loop before this line."""
        loop: ast.AST = self.loops[-1]
        function = self.frames[-1].function
        if isinstance(target, ast.Name) and function is not None and self.loop_frames.get(id(loop)) != self.frames[-1].ident:
            loop = function  # a local of a function called in the loop: each call binds it anew
        first_lines = self.loop_assignments.get(id(loop))
        if first_lines is None:
            first_lines = {}
            for statement in walk(loop):
                if isinstance(statement, (ast.Assign, ast.AnnAssign)):
                    for assigned in statement.targets if isinstance(statement, ast.Assign) else [statement.target]:
                        for name in ast.walk(assigned):
                            if isinstance(name, (ast.Name, ast.Attribute)):
                                text = source_text(name)
                                first_lines[text] = min(first_lines.get(text, statement.lineno), statement.lineno)
            self.loop_assignments[id(loop)] = first_lines
        return first_lines.get(source_text(target), before_line) < before_line

    def _kept_by_reassignment(self, node: ast.Assign) -> bool:
        """`total = total + loss` in a loop keeps `loss` alive like `total += loss`; handles the assignment."""
        if not self.loops or len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name) or not isinstance(node.value, ast.BinOp):
            return False
        name = node.targets[0].id
        left, right = node.value.left, node.value.right
        if isinstance(left, ast.Name) and left.id == name:
            other = right
        elif isinstance(right, ast.Name) and right.id == name:
            other = left
        else:
            return False
        if self._assigned_in_loop(node.targets[0], node.lineno):
            return False
        current = self.lookup(name)
        added = self.eval(other)
        self.emit("keep", ev.Keep(node, added, name))
        self._bind_name(name, self._arithmetic(node.value.op, current | added))
        return True


def parameters_known(model: Thing, script: Script) -> bool | None:
    """Whether a model holds parameters: True, False (certainly none) or None (cannot tell); models
    not made from a file class or a weightless `Sequential` are taken to hold them."""
    if "class" in model.facts:
        return script.has_parameters(model.facts["class"])
    return model.facts.get("parameters", True)


def _name_things(values: frozenset, name: str) -> None:
    """Objects take the name of the first variable they are bound to (`optimizer`, not `torch.optim.SGD`)."""
    for thing in things(values):
        if thing.known and not thing.facts.get("named"):
            thing.name = name
            thing.facts["named"] = True


_FAKE_CALL = ast.Call(func=ast.Name(id="__init__"), args=[], keywords=[])


def _empty_literal(node: ast.expr) -> bool:
    """`[]`, `()`, `{}`, `0`, `0.0`, `None`, `list()`, `deque()`: a fresh, empty value."""
    if isinstance(node, (ast.List, ast.Tuple, ast.Dict, ast.Set)):
        return not getattr(node, "elts", None) and not getattr(node, "keys", None)
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id in ("list", "deque", "dict") and not node.args and not node.keywords
    return isinstance(node, ast.Constant) and node.value in (0, None)


def _dotted_name(func: ast.expr) -> str:
    """`metric.update` for `self.metric.update(...)`'s callee, `f1_score` for `f1_score(...)` ('' otherwise)."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _receiver_root(func: ast.expr) -> str:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else ""


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _literal(node: ast.expr | None) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def _constant(node: ast.Call, name: str, default: Any) -> Any:
    """A keyword argument's literal value; its default when absent; None when not a literal."""
    value = _keyword(node, name)
    if value is None:
        if any(k.arg is None for k in node.keywords):
            return None
        return default
    return value.value if isinstance(value, ast.Constant) else None


def _tagged(values: frozenset, tag: str) -> Tensor:
    merged = merge_tensors(values) if tensors(values) else Tensor()
    return Tensor(frozenset((tag,)), merged.origins, merged.graph)


def _must_tag(values: frozenset, tag: str) -> bool:
    return bool(values) and all(isinstance(v, Tensor) and tag in v.tags for v in values)


def _params_in(values: Iterable[Any]) -> Params | None:
    """Parameter sources when every value is made of parameters (lists, param-group dicts), else None."""
    sources: set = set()
    found = False
    for value in values:
        if isinstance(value, Params):
            sources |= value.sources
            found = True
        elif isinstance(value, Thing) and value.kind == "dict" and "params" in value.facts["entries"]:
            inner = _params_in(value.facts["entries"]["params"])
            if inner is None:
                return None
            sources |= inner.sources
            found = True
        elif isinstance(value, Thing) and value.kind == "list":
            inner = _params_in(value.facts["elements"])
            if inner is None:
                return None
            sources |= inner.sources
            found = True
        else:
            return None
    return Params(frozenset(sources)) if found else None


@cache
def _handled_events(rule_class: type) -> tuple[str, ...]:
    """The events a rule class subscribes to: its `on_<event>` methods."""
    return tuple(name[3:] for name in dir(rule_class) if name.startswith("on_"))


def _is_static(function: FunctionNode) -> bool:
    return any(isinstance(d, ast.Name) and d.id in ("staticmethod",) for d in function.decorator_list)


def _decorated(function: FunctionNode, name: str) -> bool:
    return any(isinstance(d, ast.Name) and d.id == name for d in function.decorator_list)


def _decorated_no_grad(function: FunctionNode, script: Script) -> bool:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        qualname = script.imports.qualname(target)
        if qualname in ("torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad"):
            return True
    return False
