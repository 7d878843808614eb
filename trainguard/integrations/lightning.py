"""The runtime guard inside PyTorch Lightning: `TrainguardCallback`.

    trainer = lightning.pytorch.Trainer(callbacks=[TrainguardCallback(report="trainguard.json")])

The guard is installed in `setup` (or the installed one is used, e.g. under `trainguard run`) and
removed in `teardown` (or `on_exception`) if the callback installed it. Each new finding is logged
through Python logging under `lightning.pytorch.callbacks.trainguard` (Lightning's own handler
prints it) the moment the guard makes it; `.findings` holds them and
`report=PATH` receives the JSON report. `select`, `ignore`, `strict`, `thresholds`, `metrics` and
`tensorboard` are `trainguard.watch()`'s.

Rules that Lightning's loops take care of stay quiet unless `include_prevented=True` (measured on
Lightning 2.6 with a real model: 32-bit, bf16-mixed, gradient clipping and accumulation):

With automatic optimization (the default), the optimization loop itself
- TG101 stale-gradients: calls `optimizer.zero_grad()` before each window's first backward;
- TG102 accumulation-loss-not-scaled: divides the loss by `accumulate_grad_batches`;
- TG104 clip-before-unscale: unscales GradScaler gradients before `gradient_clip_val` clips;
- TG110 scheduler-before-optimizer: steps schedulers after the optimizer (and not when the
  GradScaler skipped the step);
and in every mode the fit loop
- TG202 train-mode-missing: calls `.train()` on the module before training and after validation;
- TG502 sampler-epoch-not-set: calls `set_epoch` on the (distributed) sampler every epoch.
Under manual optimization (`automatic_optimization = False`) the user zeroes, steps, clips and
schedules, so TG101/102/104/110 are checked. Everything else is checked: Lightning does not look
at the loss inputs, at which parameters the optimizers of `configure_optimizers` hold, at modules
in plain lists, at graphs kept alive, or at the numbers. Lightning's `validation_step` runs in
eval mode under no_grad, so TG201/TG203 can only concern forwards the user makes in
`training_step` (a teacher in train mode, an unused graph), which Lightning does not prevent.

Lightning runs `optimizer.step(closure)` with the forward and backward inside the closure; the
guard sees such a step start after the closure's first call (for every optimizer: see
docs/runtime.md), as in a plain loop, so the callback leaves Lightning's calls as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from trainguard.integrations import TrainerGuard, require

_pl = require("lightning.pytorch", "lightning", "trainguard.integrations.lightning")

LOGGER = logging.getLogger("lightning.pytorch.callbacks.trainguard")

# The rules Lightning's loops take care of: see the module docstring.
PREVENTED_ALWAYS = {
    "TG202": "the fit loop calls .train() before training and after validation",
    "TG502": "the fit loop calls set_epoch on the sampler every epoch",
}
PREVENTED_AUTOMATIC = {
    "TG101": "automatic optimization calls optimizer.zero_grad() every step",
    "TG102": "automatic optimization divides the loss by accumulate_grad_batches",
    "TG104": "the precision plugin unscales GradScaler gradients before clipping",
    "TG110": "schedulers are stepped after the optimizer",
}


def prevented_rules(automatic_optimization: bool) -> dict[str, str]:
    """The rules Lightning takes care of in this optimization mode, with the reason."""
    return {**PREVENTED_ALWAYS, **(PREVENTED_AUTOMATIC if automatic_optimization else {})}


_Callback: Any = _pl.Callback  # a base mypy can name (the module is imported at run time)


class TrainguardCallback(TrainerGuard, _Callback):
    """Runs the trainguard runtime guard while a Lightning Trainer fits, validates or tests.

    Arguments: see `trainguard.integrations.TrainerGuard` (`report=PATH`, `include_prevented`,
    and `trainguard.watch()`'s `select`, `ignore`, `strict`, `thresholds`, `metrics`,
    `tensorboard`). `.findings` holds the findings of the current or last run.
    """

    findings_logger = LOGGER

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._start_guard(prevented_rules(pl_module.automatic_optimization))

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        # Lightning does not call teardown when fit() raises (e.g. GuardStop under strict=True).
        self.close()
