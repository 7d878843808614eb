"""TG207 frozen-batchnorm-updating: BatchNorm layers with frozen affine parameters left in train
mode during training, so their running statistics keep moving.

At a training forward (train mode, gradients on, in a detailed window) the model's BatchNorm
layers are looked at: in train mode, tracking running statistics, with affine parameters that
all have `requires_grad=False`. The verdict waits for the optimizer step, and only forwards that
the step's backward reached count: a frozen teacher or a recalibration pass is not training.
The model must also have trainable parameters of its own: a GAN discriminator frozen as a whole
while the generator's loss passes through it (its BatchNorm in train mode, as in pix2pix and
CycleGAN) is left alone. Layers without affine parameters (`affine=False`) are left alone too:
nothing says they are frozen.
"""

from __future__ import annotations

from torch.nn.modules.batchnorm import _BatchNorm

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ForwardCall, StepStart


def _frozen_and_updating(module: _BatchNorm) -> bool:
    parameters = [p for p in (module.weight, module.bias) if p is not None]
    return (
        module.training
        and module.track_running_stats
        and module.momentum != 0
        and bool(parameters)
        and not any(p.requires_grad for p in parameters)
    )


class FrozenBatchnormUpdating(Detector):
    """TG207, at the optimizer step after a training forward through frozen train-mode BatchNorm."""

    code = "TG207"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._candidates: list[tuple[ForwardCall, list[str]]] = []

    def on_forward(self, event: ForwardCall) -> None:
        if not (event.training and event.grad_enabled and event.reach is not None and self.session.detailed):
            return
        layers = [
            f"{name or event.root.name} ({type(module).__name__})"
            for name, module in event.root.mode_dependent
            if isinstance(module, _BatchNorm) and _frozen_and_updating(module)
        ]
        model = event.root.module
        # A model frozen as a whole for this step (a GAN's discriminator during the generator's
        # step, its BatchNorm still in train mode) is not being fine-tuned around frozen layers.
        if layers and model is not None and any(p.requires_grad for p in model.parameters()):
            self._candidates.append((event, layers))

    def on_step_start(self, event: StepStart) -> None:
        candidates, self._candidates = self._candidates, []
        for call, layers in candidates:
            if call.reach is not None and call.reach.reached:
                self.report(
                    f"{len(layers)} BatchNorm layer(s) of {call.root.name} have frozen weights (requires_grad=False) "
                    f"but run in train mode: their running mean/variance still move with every training batch, "
                    f"so the frozen layers are not frozen at evaluation",
                    call.location,
                    evidence={"batchnorm_layers": layers[:10], "frozen_layers": len(layers)},
                    step=event.index,
                )
