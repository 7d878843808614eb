"""PyTorch library semantics of the interpreter: what torch, optim, nn, DataLoader and autocast calls produce,
and the lint events (`trainguard.lint.events`) they emit. The names it recognizes live in `lint/vocabulary.py`.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any, Iterable

from trainguard.lint import events as ev
from trainguard.lint.names import source_text
from trainguard.lint.python_semantics import _UNKNOWN, DTYPES, _is_static, _params_in
from trainguard.lint.script import FunctionNode, Script
from trainguard.lint.trace_state import AUTOCAST, GRAD, BudgetExceeded, Frame, TraceState
from trainguard.lint.values import TOP, Params, Tensor, Thing, merge_tensors, tensors, things, unknown
from trainguard.lint.vocabulary import (
    DETACHING_METHODS,
    LOSS_CLASSES,
    LOSS_FUNCTIONS,
    MAP_STYLE_DATASETS,
    NO_GRAPH_RESULTS,
    PARAMETER_LAYERS,
    SHAPE_METHODS,
    TORCHVISION_MODE_DEPENDENT,
    builds_pretrained_model,
    functional_name,
    is_grad_scaler,
    is_optimizer,
    is_scheduler,
    torch_nn_class,
)

NO_GRAD_CONTEXTS = {"torch.no_grad": False, "torch.inference_mode": False, "torch.enable_grad": True, "torch.autograd.no_grad": False, "torch.autograd.grad_mode.no_grad": False}
AUTOCAST_CONTEXTS = {
    "torch.autocast": None,
    "torch.amp.autocast": None,
    "torch.amp.autocast_mode.autocast": None,
    "torch.cuda.amp.autocast": "float16",
    "torch.cuda.amp.autocast_mode.autocast": "float16",
    "torch.cpu.amp.autocast": "bfloat16",
}
COMPARISON_METHODS = {"eq", "ne", "lt", "le", "gt", "ge", "equal", "isclose", "allclose"}
CLIP_FUNCTIONS = {"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm"}
RETURNS_RECEIVER = {"to", "cuda", "cpu", "train", "eval", "half", "float", "double", "bfloat16", "requires_grad_", "share_memory", "type"}
MODEL_READ_ONLY = {"parameters", "named_parameters", "state_dict", "modules", "children", "named_modules", "named_children", "buffers", "named_buffers", "get_submodule", "extra_repr", "num_parameters", "load_state_dict", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "apply"}
# torch.distributed APIs that return (or shard in place) the module they receive: its parameters, modes and gradients.
MODULE_WRAPPERS = frozenset(("parallelize_module", "fully_shard", "FullyShardedDataParallel", "FSDP", "checkpoint_wrapper", "replicate"))
# torch containers: `self.transformer.wte(x)` on an nn.ModuleDict calls a child, it does nothing to the container.
CONTAINERS = frozenset(("ModuleDict", "ModuleList", "Sequential"))


class TorchSemantics(TraceState):
    """Mixin of `Interpreter`: library calls and the methods of the objects they make."""

    if TYPE_CHECKING:
        # Defined by the other mixins of `Interpreter`.
        def _elements(self, values: frozenset) -> frozenset: ...
        def eval(self, node: ast.expr | None) -> frozenset: ...
        def score(self, values: frozenset) -> None: ...
        def call_values(self, node: ast.Call, callees: frozenset, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset: ...
        def opaque(self, node: ast.Call, args: list[frozenset], kwargs: dict[str, frozenset]) -> frozenset: ...
        def _call_function(
            self, function: FunctionNode, args: Iterable[frozenset], kwargs: dict[str, frozenset], self_thing: Thing | None, node: ast.Call | None, entry: bool | None = None
        ) -> frozenset: ...
        def _push_frame(self, function: FunctionNode | None, self_thing: Thing | None = None) -> Frame: ...
        def _instance(self, class_name: str, node: ast.AST | None, run_init: bool = True, args: list[frozenset] | None = None, kwargs: dict[str, frozenset] | None = None) -> Thing: ...
        def _assigned_in_loop(self, target: ast.expr, before_line: int) -> bool: ...

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
                sub = type(self)(self.script, (), budget=2000)
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


def parameters_known(model: Thing, script: Script) -> bool | None:
    """Whether a model holds parameters: True, False (certainly none) or None (cannot tell); models
    not made from a file class or a weightless `Sequential` are taken to hold them."""
    if "class" in model.facts:
        return script.has_parameters(model.facts["class"])
    return model.facts.get("parameters", True)


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


def _decorated(function: FunctionNode, name: str) -> bool:
    return any(isinstance(d, ast.Name) and d.id == name for d in function.decorator_list)
