"""Module probe: finds the root modules (the models) and reports their forward calls.

Global module hooks are installed only in detailed windows (they put every module call on
PyTorch's slow path); there they discover roots and spot trainable modules that run inside a
root's forward without being registered in it. A root's calls are reported always, one
`ForwardCall` per outermost root call, by wrapping `__call__` of the root's class, not with the
module's own forward hooks: those live in the user's object, so `copy.deepcopy`, `pickle`,
`torch.save` and `torch.jit.script` of a watched model would copy, save or compile the guard with
it. The class wrapper costs one dictionary look-up per call of a module of that class, and the
guard's state stays in its own tables, keyed by module id and dropped when the module dies.
"""

from __future__ import annotations

import functools
import sys
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, cast

import torch
from torch import nn
from torch.compiler import is_compiling
from torch.utils.hooks import RemovableHandle

from trainguard.runtime.callsite import user_location
from trainguard.runtime.events import ForwardCall, HiddenModuleCall, ReachFlag
from trainguard.runtime.probes import Patches
from trainguard.runtime.state import RootModule

if TYPE_CHECKING:
    from torch.autograd.graph import Node

    from trainguard.runtime.context import ObserverContext

_MAX_OUTPUTS = 8
_MAX_INPUTS = 4


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
        self._hidden_seen: set[int] = set()
        self._generation_step = -1
        self._patches = Patches()
        self._class_wrappers: set[Callable[..., Any]] = set()
        self._active = False
        self._compiled_patched = False
        self._in_compiled_call = 0

    # -- install -------------------------------------------------------------------------
    def install(self) -> None:
        self._active = True
        self._set_global_hooks(True)
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
                self._unwatched_call = None
                self._root_depth = max(self._root_depth - 1, 0)

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
        probe = self

        @functools.wraps(cls.__call__)
        def __call__(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
            # The inherited `__call__` is looked up at each call, never kept: torch.fx, for one,
            # replaces nn.Module.__call__ while it traces.
            if is_compiling() or not probe._active or id(module) not in probe.roots:
                # mypy takes a class held in a variable for an instance: super(cls, ...) is fine here.
                return own(module, *args, **kwargs) if own is not None else super(cls, module).__call__(*args, **kwargs)  # type: ignore[arg-type]
            call = functools.partial(own, module) if own is not None else super(cls, module).__call__  # type: ignore[arg-type]
            return probe._root_call(module, call, args, kwargs)

        self._patches.set(cls, "__call__", __call__)
        self._class_wrappers.add(__call__)

    # -- global hooks (detailed windows) -------------------------------------------------
    def _global_pre(self, module: nn.Module, args: Any) -> None:
        if is_compiling():
            return
        try:
            if not self._stack:
                if id(module) not in self.roots and next(module.parameters(), None) is not None:
                    self._add_root(module)
                    # This call began before the class wrapper existed: the global post-hook ends it.
                    self._unwatched_call = module
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
            self._root_finished(module, args, output)
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
            self._unwatched_call = None
            self._root_depth = max(self._root_depth - 1, 0)

    # -- root calls (always) -------------------------------------------------------------
    def _root_call(self, module: nn.Module, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run `call(*args, **kwargs)`, a call of a root; the outermost one is reported when it returns."""
        if self._unwatched_call is not None:  # only during the first call of a new root
            self._drop_stale_calls()
        self._root_depth += 1
        base = len(self._stack)
        if self.session.detailed and not self._global_handles and self._root_depth == 1 and not self._in_compiled_call:
            self._set_global_hooks(True)  # before the call: the global pre-hook sees the root
        try:
            output = call(*args, **kwargs)
        except BaseException:
            self._root_depth = max(self._root_depth - 1, 0)
            del self._stack[base:]  # see _drop_stale_calls: a BaseException skips the post-hooks
            raise
        self._root_finished(module, args, output)
        return output

    def _root_finished(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._root_depth = max(self._root_depth - 1, 0)
        if self._root_depth:
            return  # a root called inside another root's forward
        try:
            root = self.roots.get(id(module))
            if root is None:
                return
            if self.session.detailed and self._generation_step != self.session.step:
                self._generation_step = self.session.step
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
    # Cheaper than _is_dense_float (this runs at every root call): a strided layout has a storage; a
    # meta or empty one has address 0, and subclasses without a real storage raise.
    try:
        addresses = tuple(t.untyped_storage().data_ptr() for t in items if isinstance(t, torch.Tensor) and t.layout is torch.strided)
    except (RuntimeError, NotImplementedError, TypeError):
        return ()
    return tuple(address for address in addresses if address)


def _is_dense_float(value: Any) -> bool:
    """A floating-point tensor whose values can be read (not sparse, nested, quantized or meta)."""
    return (
        isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.layout == torch.strided
        and not value.is_nested
        and value.device.type != "meta"
    )
