"""`FitConfig`: every knob of the reference loop, checked when it is made."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Precision = Literal["fp32", "bf16", "fp16"]


class ConfigError(ValueError):
    """A setting with a wrong value; the message is one sentence naming the setting."""


def check_range(name: str, value: float | None, *, at_least: float | None = None, above: float | None = None,
                below: float | None = None) -> None:
    """Raise ConfigError naming `name` and its allowed range unless `value` (None: unset) lies in it.
    NaN and infinity (TOML has both) are never in range."""
    if value is None:
        return
    bounds = [f"at least {at_least:g}" if at_least is not None else "", f"above {above:g}" if above is not None else "",
              f"below {below:g}" if below is not None else ""]
    inside = (math.isfinite(value) and (at_least is None or value >= at_least) and (above is None or value > above)
              and (below is None or value < below))
    if not inside:
        raise ConfigError(f"{name} must be {' and '.join(b for b in bounds if b)} (got {value!r})")


@dataclass(frozen=True)
class FitConfig:
    """How `fit()` trains. Step counts are optimizer steps; `None` switches a feature off.

    `out_dir` receives checkpoints/, metrics.jsonl, tensorboard/, final.safetensors and report.json
    (nothing is written when it is None). `max_steps` stops training early (after `epochs` at the
    latest). `eval_every_steps` / `eval_every_epochs` schedule validation, which also follows the
    last step; `checkpoint_every_steps` adds checkpoints to the ones written at the end of every
    epoch and of training. `device` is where the model already is ("cuda": this rank's GPU). `keep_last`
    step checkpoints are kept, plus `best.pt`: the checkpoint with the best `best_metric`
    ("val_loss", or "val_<name>" for a metric given to fit()), the lowest or highest by `best_mode`.
    `compile` trains through `torch.compile(model)` (validation and checkpoints use the model
    itself). `tensorboard` also writes the metrics as TensorBoard scalars to out_dir/tensorboard
    when tensorboard is installed.
    """

    out_dir: str | Path | None = None
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 256
    accumulation_steps: int = 1
    precision: Precision = "fp32"
    clip_grad_norm: float | None = None
    eval_every_steps: int | None = None
    eval_every_epochs: int | None = 1
    checkpoint_every_steps: int | None = None
    keep_last: int = 3
    log_every_steps: int = 10
    seed: int = 0
    num_workers: int = 0
    device: str = "cpu"
    guard: bool = True
    progress: bool = True
    resume: bool = False
    compile: bool = False
    best_metric: str = "val_loss"
    best_mode: Literal["min", "max"] = "min"
    tensorboard: bool = True

    def __post_init__(self) -> None:
        at_least = {"epochs": 1, "batch_size": 1, "eval_batch_size": 1, "accumulation_steps": 1, "keep_last": 1,
                    "log_every_steps": 1, "num_workers": 0, "max_steps": 1, "eval_every_steps": 1,
                    "eval_every_epochs": 1, "checkpoint_every_steps": 1, "seed": 0}
        for name, minimum in at_least.items():
            check_range(name, getattr(self, name), at_least=minimum)
        check_range("clip_grad_norm", self.clip_grad_norm, above=0)
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"precision must be fp32, bf16 or fp16 (got {self.precision!r})")
        if self.best_mode not in ("min", "max"):
            raise ConfigError(f"best_mode must be min or max (got {self.best_mode!r})")

    def steps_per_epoch(self, train_samples: int, world: int = 1) -> int:
        """Optimizer steps in one epoch: a window of accumulation_steps micro-batches each, the
        last window possibly shorter (no micro-batch is dropped); `world` ranks share the epoch."""
        return math.ceil(math.ceil(math.ceil(train_samples / world) / self.batch_size) / self.accumulation_steps)

    def total_steps(self, train_samples: int, world: int = 1) -> int:
        """Optimizer steps of the whole run: `epochs` of them, or `max_steps` when fewer."""
        return min(self.max_steps or math.inf, self.steps_per_epoch(train_samples, world) * self.epochs)  # type: ignore[return-value]

    def fingerprint(self, train_samples: int, world: int) -> dict[str, int]:
        """The settings that fix the data order and the windows: a resume needs the same ones."""
        return {"seed": self.seed, "batch_size": self.batch_size, "accumulation_steps": self.accumulation_steps,
                "train_samples": train_samples, "world_size": world}
