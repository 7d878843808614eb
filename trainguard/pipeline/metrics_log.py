"""metrics.jsonl: one JSON line per logged optimizer step and per evaluation, in the shape of the
guard's metrics stream so that `trainguard report` plots it.

    {"type": "step", "step", "epoch", "loss", "grad_norm", "lr", "samples_per_s"}
    {"type": "eval", "step", "epoch", "val_loss", "samples"}

`step` is the 0-based index of the optimizer step just taken; NaN/Inf are written as strings.
The same numbers go to TensorBoard when a folder is given and tensorboard is installed:
`train/<name>` per step record, `val/<name>` per evaluation (`val_loss` is `val/loss`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator, TextIO

from trainguard.pipeline.atomic import write_text_atomic
from trainguard.report import json_safe
from trainguard.tensorboard import summary_writer

# Counters and positions, not measurements: kept out of TensorBoard.
_NOT_SCALARS = {"step", "epoch", "samples"}


def _scalars(kind: str, values: dict[str, Any]) -> Iterator[tuple[str, float]]:
    for name, value in values.items():
        if name in _NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        yield (f"val/{name.removeprefix('val_')}" if kind == "eval" else f"train/{name}"), value


class MetricsLog:
    """Appends records to a JSON-lines file (flushed per line: a killed run keeps what it logged)
    and, with `tensorboard_dir`, to TensorBoard. A resumed run first drops what the interrupted
    one logged from `resume_from_step` on: it logs those steps again."""

    def __init__(self, path: str | Path | None, resume_from_step: int | None = None,
                 tensorboard_dir: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._file: TextIO | None = None
        self._tensorboard = summary_writer(tensorboard_dir, purge_step=resume_from_step) if tensorboard_dir else None
        if self.path is None:
            return
        if resume_from_step is not None and self.path.is_file():
            self._drop_after(resume_from_step)
        elif self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a", encoding="utf-8")

    def _drop_after(self, steps_taken: int) -> None:
        # A killed run logged steps beyond its last checkpoint; the resumed run logs them again.
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():  # type: ignore[union-attr]
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the line a kill cut short
                continue
            if record.get("step", -1) < steps_taken:
                kept.append(line + "\n")
        write_text_atomic(self.path, "".join(kept))  # type: ignore[arg-type]

    def write(self, kind: str, **values: Any) -> None:
        """Append one record of `kind` ("step" or "eval") with `values` (`step` among them)."""
        if self._file is not None:
            self._file.write(json.dumps(json_safe({"type": kind, **values})) + "\n")
            self._file.flush()
        if self._tensorboard is not None:
            for tag, value in _scalars(kind, values):
                self._tensorboard.add_scalar(tag, value, values["step"])

    def flush(self) -> None:
        """Put TensorBoard's queued events on disk (JSON lines are written through already)."""
        if self._tensorboard is not None:
            self._tensorboard.flush()

    def close(self) -> None:
        """Close the file and the TensorBoard writer (records already written are on disk)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
