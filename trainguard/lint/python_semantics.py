"""Python semantics of the interpreter: statements, expressions, scopes, calls of the file's own functions and classes.

What a Python construct does to the may/must values of `trainguard.lint.values` (kept there, unchanged):
branches join, loops run twice, calls of file functions run in a new frame, code we cannot see makes what it
received unknown.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterable

from trainguard.lint import events as ev
from trainguard.lint.names import source_text
from trainguard.lint.script import FunctionNode, Script
from trainguard.lint.trace_state import AUTOCAST, GRAD, BudgetExceeded, Frame, LoopExits, TraceState
from trainguard.lint.values import TOP, Params, State, Tensor, Thing, merge_tensors, tensors, things, unknown
from trainguard.lint.vocabulary import (
    DETACHING_BUILTINS,
    HARMLESS_CALLS,
    HARMLESS_RECEIVERS,
    guess_kind,
    kind_of_annotation,
)

MAX_DEPTH = 4
# Objects whose rule facts unseen code may change (an escaped trainer instance is not tracked itself).
ESCAPING_KINDS = frozenset(("optimizer", "model", "scheduler", "scaler", "dict", "list", "loader"))
DTYPES = {"torch.float16": "float16", "torch.half": "float16", "torch.bfloat16": "bfloat16", "torch.float32": None, "torch.float": None}
# A call whose name says it measures predictions (`accuracy(out, y)`, `metric.update(...)`, `f1_score`).
METRIC_NAME = re.compile(r"accura|metric|score|precision|recall|\bf1|_f1|auroc|\bauc|\biou|psnr|ssim|bleu|perplexity", re.IGNORECASE)
_UNKNOWN = unknown()
# Handlers by node type, filled on first use (a dict lookup instead of a formatted getattr per node).
_STATEMENTS: dict[type, Callable] = {}
_EXPRESSIONS: dict[type, Callable] = {}
_FAKE_CALL = ast.Call(func=ast.Name(id="__init__"), args=[], keywords=[])


class PythonSemantics(TraceState):
    """Mixin of `Interpreter`: runs statements and evaluates expressions."""

    if TYPE_CHECKING:
        # Defined by the other mixins of `Interpreter`.
        def score(self, values: frozenset) -> None: ...
        def api_call(self, node: ast.Call, qualname: str, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset: ...
        def method_call(self, node: ast.Call, receivers: frozenset, method: str, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset: ...
        def forward(self, node: ast.Call, model: Thing, args: list[frozenset]) -> frozenset: ...
        def loss(self, node: ast.Call, family: str, reduction: Any, args: list[frozenset]) -> frozenset: ...
        def _assigned_in_loop(self, target: ast.expr, before_line: int) -> bool: ...
        def _kept_by_reassignment(self, node: ast.Assign) -> bool: ...

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
            method = _STATEMENTS[type(node)] = getattr(type(self), f"stmt_{type(node).__name__}", None) or PythonSemantics._generic_statement
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
            method = _EXPRESSIONS[type(node)] = getattr(type(self), f"expr_{type(node).__name__}", None) or PythonSemantics._generic_expression
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
        known = self.script.call_names.get(id(node))
        if known is None or known[0] is not node:  # what the callee's text says, once per call of the file
            known = self.script.call_names[id(node)] = (node, self.script.imports.qualname(func), _names_metric(_dotted_name(func)))
        qualname, metric = known[1], known[2]
        args = [self.eval(a.value if isinstance(a, ast.Starred) else a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg is not None}
        for keyword in node.keywords:
            if keyword.arg is None:
                self.eval(keyword.value)
        if self.state is None:
            return unknown()
        if metric:
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


def _name_things(values: frozenset, name: str) -> None:
    """Objects take the name of the first variable they are bound to (`optimizer`, not `torch.optim.SGD`)."""
    for thing in things(values):
        if thing.known and not thing.facts.get("named"):
            thing.name = name
            thing.facts["named"] = True


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


@lru_cache(maxsize=4096)  # every call a trace evaluates asks, and the same few names recur
def _names_metric(dotted: str) -> bool:
    return METRIC_NAME.search(dotted) is not None


def _receiver_root(func: ast.expr) -> str:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else ""


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


def _is_static(function: FunctionNode) -> bool:
    return any(isinstance(d, ast.Name) and d.id in ("staticmethod",) for d in function.decorator_list)


def _decorated_no_grad(function: FunctionNode, script: Script) -> bool:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        qualname = script.imports.qualname(target)
        if qualname in ("torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad"):
            return True
    return False
