"""The runtime guard inside the Hugging Face Trainer: `TrainguardCallback`.

    trainer = transformers.Trainer(..., callbacks=[TrainguardCallback(report="trainguard.json")])

The guard is installed in `on_train_begin` (or the installed one is used, e.g. under
`trainguard run`) and removed in `on_train_end` if the callback installed it. Each new finding is
logged through `transformers.utils.logging` (logger `transformers.integrations.trainguard`, shown
at the library's verbosity) the moment the guard makes it;
`.findings` holds them and `report=PATH` receives the JSON report. `select`, `ignore`, `strict`,
`thresholds`, `metrics` and `tensorboard` are `trainguard.watch()`'s. The Trainer has no hook for
a failed `train()`: after one, call `callback.close()` to remove the guard and write the report.

Rules that the Trainer takes care of stay quiet unless `include_prevented=True` (measured on
transformers 5.24 / accelerate 1.15 with real models, incl. gradient accumulation and bf16):
- TG101 stale-gradients: `model.zero_grad()` after every optimizer step;
- TG104 clip-before-unscale: `accelerator.clip_grad_norm_` unscales GradScaler gradients first;
- TG110 scheduler-before-optimizer: the scheduler steps after the optimizer, and not when the
  GradScaler skipped the step;
- TG202 train-mode-missing: `training_step` calls `model.train()` every step;
- TG501 train-loader-not-shuffled: the training DataLoader is built with a RandomSampler;
- TG502 sampler-epoch-not-set: the Trainer sets the sampler's epoch every epoch.
Checked, because the Trainer does not prevent them: the loss inputs (a model that applies softmax
before its cross-entropy), modules in plain lists, optimizers passed in with parameters missing,
graphs kept alive by an overridden `compute_loss`, the numbers. TG102 stays on but does not see
the Trainer's own case: it divides the loss by `gradient_accumulation_steps` only when the model's
forward takes no `**kwargs`; a model that does is trusted to normalise by `num_items_in_batch`,
and one that ignores it trains on a loss N times too large, yet the Trainer multiplies that loss
in place (by the number of processes) before backward, so the guard sees a computed loss, not a
raw one. Evaluation runs in eval mode under no_grad, so TG201/TG203 only concern forwards an
overridden `compute_loss` makes.

Findings point at the first frame outside torch, transformers and accelerate: a model defined in
the user's code is pointed at in its `forward`; a model from the transformers library computes
its loss inside the library, so its findings point at the user's `trainer.train()` call.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from trainguard.integrations import TrainerGuard, require

_transformers = require("transformers", "transformers", "trainguard.integrations.transformers")
from transformers.utils import logging as _hf_logging  # noqa: E402

# A logging.Logger, which transformers types as a protocol of its own.
LOGGER = cast(logging.Logger, _hf_logging.get_logger("transformers.integrations.trainguard"))

# The rules the Trainer takes care of: see the module docstring.
PREVENTED = {
    "TG101": "the Trainer calls model.zero_grad() after every optimizer step",
    "TG104": "accelerate unscales GradScaler gradients before clipping",
    "TG110": "the scheduler is stepped after the optimizer, and not when the step was skipped",
    "TG202": "training_step calls model.train() every step",
    "TG501": "the training DataLoader uses a RandomSampler",
    "TG502": "the Trainer calls set_epoch on the sampler every epoch",
}


_Callback: Any = _transformers.TrainerCallback  # a base mypy can name (the module is imported at run time)


class TrainguardCallback(TrainerGuard, _Callback):
    """Runs the trainguard runtime guard while a Hugging Face Trainer trains.

    Arguments: see `trainguard.integrations.TrainerGuard` (`report=PATH`, `include_prevented`,
    and `trainguard.watch()`'s `select`, `ignore`, `strict`, `thresholds`, `metrics`,
    `tensorboard`). `.findings` holds the findings of the current or last `train()`; after a
    `train()` that raised, call `close()`.
    """

    findings_logger = LOGGER

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start_guard(PREVENTED)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close()
