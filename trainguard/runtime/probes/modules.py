"""Module probe: finds the root modules (the models) and reports their forward calls.

Global module hooks are installed only in detailed steps (they put every module call on
PyTorch's slow path); there they discover roots and spot trainable modules that run inside a
root's forward without being registered in it. A root's calls are seen always, by wrapping
`__call__` of the root's class: outside detailed steps a call only compares the root's mode
(training, grad enabled) with its last call's, and a change begins a phase observed in full; in
detailed steps each outermost root call is reported as a `ForwardCall`. The wrapper is used,
not the
module's own forward hooks: those live in the user's object, so `copy.deepcopy`, `pickle`,
`torch.save` and `torch.jit.script` of a watched model would copy, save or compile the guard with
it. The class wrapper costs one dictionary look-up per call of a module of that class, and the
guard's state stays in its own tables, keyed by module id and dropped when the module dies.
`nn.Module.train` is wrapped (a class attribute, like `__call__`) to report mode changes: there
is no hook for them, and a user's override of `train()` reaches it through `super().train()`.
The first few eval-mode calls of each model in detailed windows run under the dropout watch
(probes/dropout_in_eval.py).
"""

from __future__ import annotations

import functools
import itertools
import sys
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, cast

import torch
from torch import is_grad_enabled, nn
from torch.compiler import is_compiling
from torch.utils.hooks import RemovableHandle

from trainguard.runtime.callsite import user_location
from trainguard.runtime.events import ForwardCall, HiddenModuleCall, ModeSet, ModuleBuilt, ReachFlag
from trainguard.runtime.probes import Patches
from trainguard.runtime.probes.dropout_in_eval import DropoutWatch
from trainguard.runtime.state import RootModule

if TYPE_CHECKING:
    from torch.autograd.graph import Node

    from trainguard.runtime.context import ObserverContext

_MAX_OUTPUTS = 8
_MAX_INPUTS = 4
_MAX_KEYWORDS = 8
_DROPOUT_WATCHED_CALLS = 3  # eval-mode calls per model run under the dropout watch


def _tensors(output: Any) -> list[torch.Tensor]:
    """The tensors of a forward output that carry a graph (tuple, list, dict, dataclass-like)."""
    if isinstance(output, torch.Tensor):
        return [output] if output.grad_fn is not None else []
    if isinstance(output, dict):
        items = list(output.values())
    elif isinstance(output, (list, tuple)):
        items = list(output)
    else:
        return []
    return [t for t in items[:_MAX_OUTPUTS] if isinstance(t, torch.Tensor) and t.grad_fn is not None]


def fp16_autocast_enabled() -> bool:
    for device in ("cuda", "cpu"):
        if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.float16:
            return True
    return False


class ModuleProbe:
    def __init__(self, session: ObserverContext) -> None:
        self.session = session
        self.roots: dict[int, RootModule] = session.roots
        self._global_handles: list[RemovableHandle] = []
        self._stack: list[nn.Module] = []
        self._root_depth = 0
        # A root found by the global pre-hook: its class was not watched yet when this call began.
        self._unwatched_call: nn.Module | None = None
        self._unwatched_kwargs: dict[str, Any] = {}
        self._hidden_seen: set[int] = set()
        self._layers_stale = True  # a model's layers are walked again at its next reported call
        self._patches = Patches()
        self._class_wrappers: set[Callable[..., Any]] = set()
        self._active = False
        self._compiled_patched = False
        self._in_compiled_call = 0
        self._train_depth = 0  # nesting of nn.Module.train calls: only the outermost is reported
        self._dropout_watched: dict[int, int] = {}  # model id -> eval-mode calls watched
        self._registration_handle: RemovableHandle | None = None

    @property
    def in_root_call(self) -> bool:
        """Whether a model's forward is running now (a loss called now is the model's own)."""
        return self._root_depth > 0

    # -- install -------------------------------------------------------------------------
    def install(self) -> None:
        self._active = True
        self._set_global_hooks(True)
        self.session.steady_begins.append(self._steady_begins)
        self._patches.replace(nn.Module, "train", self._wrap_train)
        if self.session.handles("module_built"):
            self._registration_handle = nn.modules.module.register_module_module_registration_hook(self._registered)
        # torch.compile'd modules warn when global module hooks exist; their class is patched
        # when torch._dynamo is loaded (importing it just for this would cost ~1 s).
        if "torch._dynamo.eval_frame" in sys.modules:
            self._patch_compiled_modules()
        else:
            self._patches.replace(torch, "compile", self._wrap_compile)

    def uninstall(self) -> None:
        # A compiled module may still hold a class wrapper (OptimizedModule binds `__call__`
        # when it is made): from now on it only passes calls through.
        self._active = False
        self._patches.undo()
        self._set_global_hooks(False)
        if self._registration_handle is not None:
            self._registration_handle.remove()
            self._registration_handle = None

    def _registered(self, module: nn.Module, name: str, submodule: nn.Module | None) -> None:
        try:
            self.session.emit("module_built", ModuleBuilt(module))
        except Exception as error:
            self.session.internal_error("module probe", error)

    def _set_global_hooks(self, on: bool) -> None:
        if on and not self._global_handles:
            register = nn.modules.module
            self._global_handles = [
                register.register_module_forward_pre_hook(self._global_pre),
                register.register_module_forward_hook(self._global_post, always_call=True),
            ]
        elif not on and self._global_handles:
            for handle in self._global_handles:
                handle.remove()
            self._global_handles.clear()
            self._stack.clear()
            if self._unwatched_call is not None:  # its call ends unseen (a compiled call began inside it)
                self._unwatched_call, self._unwatched_kwargs = None, {}
                self._root_depth = max(self._root_depth - 1, 0)

    def _steady_begins(self) -> None:
        if not self._stack:  # else at the end of the outermost module call (an optimizer step inside a forward)
            self._set_global_hooks(False)

    def _wrap_train(self, original: Any) -> Any:
        probe = self

        def train(module: nn.Module, mode: bool = True) -> Any:
            probe._train_depth += 1
            try:
                result = original(module, mode)
            finally:
                probe._train_depth -= 1
            if not probe._train_depth and probe.session.handles("mode_set"):
                try:
                    probe.session.emit("mode_set", ModeSet(module, bool(mode), user_location()))
                except Exception as error:
                    probe.session.internal_error("module probe", error)
            return result

        return train

    def _wrap_compile(self, original: Any) -> Any:
        probe = self

        def compile(*args: Any, **kwargs: Any) -> Any:
            compiled = original(*args, **kwargs)
            if not probe._compiled_patched and "torch._dynamo.eval_frame" in sys.modules:
                probe._patch_compiled_modules()
            return compiled

        return compile

    def _patch_compiled_modules(self) -> None:
        from torch._dynamo.eval_frame import OptimizedModule

        self._compiled_patched = True
        self._patches.replace(OptimizedModule, "__call__", self._wrap_compiled_call)

    def _wrap_compiled_call(self, original: Any) -> Any:
        probe = self

        def __call__(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
            # Global hooks are off for the compiled call; the compiled module is a root whose
            # calls this wrapper reports, so its forward calls are still seen.
            detailed = bool(probe._global_handles)
            probe._set_global_hooks(False)
            probe._in_compiled_call += 1
            try:
                if id(module) not in probe.roots:
                    probe._add_root(module, watch_class=False)
                return probe._root_call(module, functools.partial(original, module), args, kwargs)
            finally:
                probe._in_compiled_call -= 1
                if detailed and probe.session.detailed:
                    probe._set_global_hooks(True)

        return __call__

    def _add_root(self, module: nn.Module, watch_class: bool = True) -> RootModule:
        root = RootModule(module)
        self.roots[id(module)] = root
        weakref.finalize(module, self.roots.pop, id(module), None)
        if watch_class:
            self._watch_class(type(module))
        return root

    def _watch_class(self, cls: type) -> None:
        """Wrap `cls.__call__` so that calls of the roots among its instances are reported; the
        class's other instances pass straight through (one look-up)."""
        if cls.__call__ in self._class_wrappers:
            return  # a base class is watched already
        own = cls.__dict__.get("__call__")
        probe, session, roots = self, self.session, self.roots

        @functools.wraps(cls.__call__)
        def __call__(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
            # The inherited `__call__` is looked up at each call, never kept: torch.fx, for one,
            # replaces nn.Module.__call__ while it traces.
            # is_compiling() first: torch.compile must not trace the guard's look-ups.
            root = None if is_compiling() or not probe._active else roots.get(id(module))
            if root is None:
                # mypy takes a class held in a variable for an instance: super(cls, ...) is fine here.
                return own(module, *args, **kwargs) if own is not None else super(cls, module).__call__(*args, **kwargs)  # type: ignore[arg-type]
            call = functools.partial(own, module) if own is not None else super(cls, module).__call__  # type: ignore[arg-type]
            if session.detailed or probe._root_depth or root.call_mode != (module.training, is_grad_enabled()):
                return probe._root_call(module, call, args, kwargs)
            # The steady state's outermost call, in the model's last mode: nothing to observe
            # unless a phase begins inside it (_root_call's work, inlined: this runs every step).
            probe._root_depth = 1
            try:
                output = call(*args, **kwargs)
            except BaseException:
                probe._root_depth = 0
                probe._stack.clear()
                raise
            if session.detailed:
                probe._root_finished(module, args, kwargs, output)
            else:
                probe._root_depth = 0
            return output

        self._patches.set(cls, "__call__", __call__)
        self._class_wrappers.add(__call__)

    # -- global hooks (detailed steps) ---------------------------------------------------
    def _global_pre(self, module: nn.Module, args: Any) -> None:
        if is_compiling():
            return
        try:
            if not self._stack:
                if id(module) not in self.roots and next(module.parameters(), None) is not None:
                    self._add_root(module)
                    # This call began before the class wrapper existed: the global post-hook ends it.
                    self._unwatched_call = module
                    self._unwatched_kwargs = _call_keywords()
                    self._root_depth += 1
            else:
                root = self.roots.get(id(self._stack[0]))
                if root is not None and id(module) not in root.registered:
                    self._check_hidden(root, module)
            self._stack.append(module)
        except Exception as error:
            self.session.internal_error("module probe", error)

    def _global_post(self, module: nn.Module, args: Any, output: Any) -> None:
        if is_compiling():
            return
        if self._stack and self._stack[-1] is module:
            self._stack.pop()
        if not self._stack and module is self._unwatched_call:
            self._unwatched_call = None
            kwargs, self._unwatched_kwargs = self._unwatched_kwargs, {}
            self._root_finished(module, args, kwargs, output)
        if not self._stack and self.session.detailed is False:
            self._set_global_hooks(False)

    def _check_hidden(self, root: RootModule, module: nn.Module) -> None:
        if id(module) in self._hidden_seen:
            return
        root.refresh()  # a module added after the root was first seen is registered, not hidden
        if id(module) in root.registered:
            return
        if root.module is not self._stack[0] or id(self._stack[0]) not in _modules_in_call():
            self._drop_stale_calls()  # the root's call ended unseen: `module` is not inside it
            return
        self._hidden_seen.add(id(module))
        self.session.emit("hidden_module", HiddenModuleCall(root, module, user_location()))

    def _drop_stale_calls(self) -> None:
        """Forget the calls on the stack that are no longer running.

        PyTorch runs the global post-hook when a forward raises an `Exception`, but not for a
        `BaseException` (KeyboardInterrupt, a strict guard's GuardStop, a user's own) that the
        script catches and trains on: the calls it cut short would stay on the stack, and every
        later module would look like it ran inside them.
        """
        running = _modules_in_call()
        self._stack[:] = [m for m in self._stack if id(m) in running]
        if self._unwatched_call is not None and id(self._unwatched_call) not in running:
            self._unwatched_call, self._unwatched_kwargs = None, {}
            self._root_depth = max(self._root_depth - 1, 0)

    # -- root calls (always) -------------------------------------------------------------
    def _root_call(self, module: nn.Module, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run `call(*args, **kwargs)`, a call of a root; the outermost one is reported when it returns."""
        if self._unwatched_call is not None:  # only during the first call of a new root
            self._drop_stale_calls()
        self._root_depth += 1
        base = len(self._stack)
        if self._root_depth == 1:
            root = self.roots.get(id(module))
            mode = (module.training, torch.is_grad_enabled())
            if root is not None and root.call_mode != mode:
                root.call_mode = mode
                self.session.phase_changed()
                self._layers_stale = True  # the model is looked at afresh
            if self.session.detailed and not self._global_handles and not self._in_compiled_call:
                self._set_global_hooks(True)  # before the call: the global pre-hook sees the root
        try:
            if self._global_handles and self._watch_dropout(module):
                with DropoutWatch(self.session, self._innermost):
                    output = call(*args, **kwargs)
            else:
                output = call(*args, **kwargs)
        except BaseException:
            self._root_depth = max(self._root_depth - 1, 0)
            del self._stack[base:]  # see _drop_stale_calls: a BaseException skips the post-hooks
            raise
        self._root_finished(module, args, kwargs, output)
        return output

    def _watch_dropout(self, module: nn.Module) -> bool:
        """Run this call under the dropout watch: one of a model's first eval-mode calls, in a
        detailed window, outside compiled calls. Asked only while the global hooks are installed
        (the module stack is known): the caller tests that first, cheaply, on every model call."""
        if module.training or self._root_depth != 1 or self._in_compiled_call:
            return False
        if not self.session.detailed or not self.session.handles("dropout_in_eval"):
            return False
        watched = self._dropout_watched.get(id(module), 0)
        if watched >= _DROPOUT_WATCHED_CALLS:
            return False
        self._dropout_watched[id(module)] = watched + 1
        return True

    def _innermost(self) -> nn.Module | None:
        return self._stack[-1] if self._stack else None

    def _root_finished(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        self._root_depth = max(self._root_depth - 1, 0)
        if self._root_depth or not self.session.detailed:
            return  # a root called inside another root's forward, or a steady-state step
        try:
            root = self.roots.get(id(module))
            if root is None:
                return
            if root.call_mode is None:
                root.call_mode = (module.training, torch.is_grad_enabled())  # found by the global pre-hook during this call
            if self._layers_stale:
                # Layers added later are seen at a phase change (each mode change of a model, so
                # at least at every evaluation), not at every detailed step or window: walking a
                # large model's modules costs up to milliseconds.
                self._layers_stale = False
                root.refresh()
            grad_enabled = torch.is_grad_enabled()
            outputs = _tensors(output) if grad_enabled else []
            reach = None
            if outputs:
                reach = ReachFlag()
                for tensor in outputs:
                    cast("Node", tensor.grad_fn).register_prehook(reach)  # _tensors keeps tensors with a graph
            call = ForwardCall(
                root=root,
                training=module.training,
                grad_enabled=grad_enabled,
                fp16_autocast=fp16_autocast_enabled(),
                step=self.session.step,
                location=user_location(),
                reach=reach,
                inputs=[weakref.ref(a) for a in args[:_MAX_INPUTS] if _is_dense_float(a)],
                integer_inputs=_integer_inputs(args, kwargs),
                output_storages=storage_ids(output),
            )
            self.session.window.forwards.append(call)
            self.session.emit("forward", call)
        except Exception as error:
            self.session.internal_error("module probe", error)


_CALL_IMPL = nn.Module._call_impl.__code__


def _modules_in_call() -> set[int]:
    """The ids of the modules whose `__call__` is running now (read from the Python stack; used
    only to repair the probe's own stack, which is rare)."""
    running = set()
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _CALL_IMPL:
            running.add(id(frame.f_locals.get("self")))
        frame = frame.f_back
    return running


def storage_ids(value: Any) -> tuple[int, ...]:
    """Storage addresses of a tensor's (or a forward output's) dense tensors; a view or a detach() of
    a tensor has the same. No device read: the address is host metadata."""
    if isinstance(value, torch.Tensor):
        items: list[Any] = [value]
    elif isinstance(value, dict):
        items = list(value.values())[:_MAX_OUTPUTS]
    elif isinstance(value, (list, tuple)):
        items = list(value)[:_MAX_OUTPUTS]
    else:
        return ()
    # Cheaper than _is_dense_float (this runs at every reported root call): a strided layout has a storage; a
    # meta or empty one has address 0, and subclasses without a real storage raise.
    try:
        addresses = tuple(t.untyped_storage().data_ptr() for t in items if isinstance(t, torch.Tensor) and t.layout is torch.strided)
    except (RuntimeError, NotImplementedError, TypeError):
        return ()
    return tuple(address for address in addresses if address)


def _is_dense_float(value: Any) -> bool:
    """A floating-point tensor whose values can be read (not sparse, nested, quantized or meta)."""
    return isinstance(value, torch.Tensor) and value.is_floating_point() and _readable(value)


def _readable(value: torch.Tensor) -> bool:
    """Values that can be read: not sparse, nested or meta."""
    return value.layout == torch.strided and not value.is_nested and value.device.type != "meta"


def _call_keywords() -> dict[str, Any]:
    """The keyword arguments of the module call whose global pre-hook is running (`model(input_ids=...,
    labels=...)`), read from `Module._call_impl`'s frame: global pre-hooks get no keywords, and
    PyTorch 2.13's `with_kwargs` global forward hooks are unusable (the hook is called without the
    keywords when a forward raises, as activation checkpointing's recomputation does, and removing
    it leaves every later module call on the slow path). Empty when the frame is not that call."""
    frame = sys._getframe(2)  # 0: this function, 1: the pre-hook, 2: the module call
    # `_call_impl` runs its hooks in a closure, `inner`, which sees the call's `kwargs`.
    if frame.f_code.co_name not in ("inner", "_call_impl") or frame.f_globals.get("__name__") != "torch.nn.modules.module":
        return {}
    keywords = frame.f_locals.get("kwargs")
    return dict(keywords) if isinstance(keywords, dict) else {}


def _integer_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[int | str, weakref.ref]:
    """Weak references to the integer tensors among the first arguments of a call, by position or keyword."""
    found: dict[int | str, weakref.ref] = {}
    for index, value in enumerate(args[:_MAX_INPUTS]):
        if _is_dense_integer(value):
            found[index] = weakref.ref(value)
    if kwargs:
        for key, value in itertools.islice(kwargs.items(), _MAX_KEYWORDS):
            if _is_dense_integer(value):
                found[key] = weakref.ref(value)
    return found


_INTEGER_DTYPES = frozenset({torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8})


def _is_dense_integer(value: Any) -> bool:
    """An integer tensor (token ids, class labels, masks) whose values can be read."""
    return isinstance(value, torch.Tensor) and value.dtype in _INTEGER_DTYPES and _readable(value)
