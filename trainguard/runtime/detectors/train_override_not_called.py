"""TG208 train-override-not-called: a model whose class overrides `train()` starts training
without `train()` ever having run, so whatever the override does (freeze a stage, put BatchNorm in
eval mode) never happened.

`nn.Module.__init__` sets `training = True` without calling `train()`, so a model trained without
calling it works, only without its override. The module probe reports every outermost
`train()` / `eval()` call; the verdict is made at the first optimizer step that a forward of the
model reached in train mode. An override is a `train` defined in the user's own files (not in an
installed package), by the model's class or the one inside a DistributedDataParallel /
torch.compile wrapper. It counts as run when `train()` or `eval()` ran on the model or on one of
its submodules (an override that does not call `super().train()` still sets its children's
modes). Calls made before the guard was installed are not seen, so only a model built while the
guard was installed is judged (under `trainguard run`, every model; with `trainguard.watch()`
called after building the model, none: its `train()` may have run unseen).
"""

from __future__ import annotations

import weakref

from torch import nn

from trainguard.runtime.callsite import is_user_file
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ModeSet, ModuleBuilt, StepStart


def _override_owner(module: nn.Module) -> type | None:
    """The user's class that defines the `train()` this module runs, if any: installed
    libraries' overrides (transformers' recasts kernels, DDP's) do not depend on being called."""
    for owner in type(module).__mro__:
        if "train" in owner.__dict__:
            code = getattr(owner.__dict__["train"], "__code__", None)
            return owner if code is not None and is_user_file(code.co_filename) else None
    return None


def _model_behind(module: nn.Module) -> nn.Module:
    """The user's model inside DistributedDataParallel (`.module`) or torch.compile (`._orig_mod`)."""
    for attribute in ("_orig_mod", "module"):
        inner = getattr(module, attribute, None)
        if isinstance(inner, nn.Module) and type(module).__module__.split(".", 1)[0] == "torch":
            return _model_behind(inner)
    return module


class TrainOverrideNotCalled(Detector):
    """TG208, at the first training step of each model."""

    code = "TG208"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._mode_set: set[int] = set()  # ids of modules train()/eval() ran on (outermost calls)
        self._judged: set[int] = set()  # roots already judged
        # The modules built under the guard (a sub-module registered on them), by id, held weakly
        # (a module class may define __eq__ and so not be hashable).
        self._built: dict[int, weakref.ref[nn.Module]] = {}

    def on_module_built(self, event: ModuleBuilt) -> None:
        module = event.module
        self._built[id(module)] = weakref.ref(module)

    def _was_built_here(self, model: nn.Module) -> bool:
        ref = self._built.get(id(model))
        return ref is not None and ref() is model

    def on_mode_set(self, event: ModeSet) -> None:
        self._mode_set.add(id(event.module))

    def on_step_start(self, event: StepStart) -> None:
        for call in self.session.window.forwards:
            if not call.training or call.reach is None or not call.reach.reached:
                continue
            root = call.root.module
            if root is None or id(root) in self._judged:
                continue
            self._judged.add(id(root))
            model = _model_behind(root)
            owner = _override_owner(model)
            if owner is None or not self._was_built_here(model) or any(id(module) in self._mode_set for module in model.modules()):
                continue
            self.report(
                f"{type(model).__name__} overrides train() ({owner.__qualname__}.train) but training began without "
                f"train() ever being called: the override never ran (nn.Module starts in train mode without it)",
                call.location,
                evidence={"model": type(model).__name__, "override": f"{owner.__module__}.{owner.__qualname__}.train"},
                step=event.index,
            )
