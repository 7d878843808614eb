"""The metrics stream: one JSON line per measured optimizer step and per evaluation, and the same
numbers as TensorBoard scalars when a folder is given and tensorboard is installed. Steady-state
steps (between detailed ones) have their loss only, written when it is read: at the next
detailed step, so the lines of a few steps arrive together."""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any

import torch

from trainguard.report import json_safe
from trainguard.runtime.events import Evaluated, Finish, LossesRead, StepEnd, StepMeasured
from trainguard.runtime.measurements import norm_of
from trainguard.tensorboard import summary_writer

if TYPE_CHECKING:
    from trainguard.runtime.context import ObserverContext

# The update-to-weight ratio is computed over at most this many parameter tensors (the largest):
# it needs a copy of them from before the step.
UPDATE_RATIO_TENSORS = 32


class MetricsStream:
    """Session component writing `measured` / `evaluated` events as JSON lines (+ TensorBoard)."""

    def __init__(self, session: ObserverContext, path: str | None, tensorboard_dir: str | None) -> None:
        self.session = session
        self._file = open(path, "a", encoding="utf-8") if path else None
        self._tensorboard = _tensorboard_writer(tensorboard_dir) if tensorboard_dir else None
        self._pending: StepMeasured | None = None
        self._before: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_losses_read(self, event: LossesRead) -> None:
        # Steady-state steps' losses, read late: their steps are over.
        for measured in event.per_step():
            self._write_step(measured, None)

    def on_measured(self, event: StepMeasured) -> None:
        self._pending = event
        optimizer_params = [p for optimizer in self.session.optimizer_states for group in optimizer.param_groups for p in group["params"]]
        largest = sorted(optimizer_params, key=lambda p: p.numel(), reverse=True)[:UPDATE_RATIO_TENSORS]
        self._before = [(p, p.detach().clone()) for p in largest]

    def on_step_end(self, event: StepEnd) -> None:
        measured, self._pending = self._pending, None
        if measured is None:
            return
        update_ratio, self._before = self._update_ratio(), []
        self._write_step(measured, update_ratio)

    def _write_step(self, measured: StepMeasured, update_ratio: float | None) -> None:
        record = {
            "type": "step",
            "step": measured.step,
            "loss": measured.loss,
            "grad_norm": measured.grad_norm,
            "update_ratio": update_ratio,
            "lr": measured.lr,
            "layer_grad_norms": measured.layer_norms,
        }
        self._write(record)
        for name in ("loss", "grad_norm", "update_ratio", "lr"):
            value = record[name]
            if isinstance(value, float) and math.isfinite(value):
                self._scalar(f"train/{name}", value, measured.step)

    def _update_ratio(self) -> float | None:
        """How far the step moved the largest parameters, relative to their size (None: not measured)."""
        if not self._before:
            return None
        change = sum(float(norm_of(p.detach() - old)) ** 2 for p, old in self._before)
        size = sum(float(norm_of(old)) ** 2 for _, old in self._before)
        return math.sqrt(change / size) if size > 0 else None

    def on_evaluated(self, event: Evaluated) -> None:
        self._write({"type": "eval", "evaluation": event.index, "step": event.step, "val_loss": event.loss, "samples": event.samples})
        if math.isfinite(event.loss):
            self._scalar("val/loss", event.loss, event.step)

    def on_finish(self, event: Finish) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tensorboard is not None:
            self._tensorboard.close()

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            record["rank"] = self.session.config.rank
            self._file.write(json.dumps(json_safe(record)) + "\n")  # JSON has no NaN/Inf: strings
            self._file.flush()

    def _scalar(self, tag: str, value: float, step: int) -> None:
        if self._tensorboard is not None:
            self._tensorboard.add_scalar(tag, value, step)


def _tensorboard_writer(folder: str) -> Any:
    writer = summary_writer(folder)
    if writer is None:
        sys.stderr.write("trainguard: tensorboard is not installed; the metrics go to the JSON-lines stream only\n")
    return writer
