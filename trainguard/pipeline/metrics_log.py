"""metrics.jsonl: one JSON line per logged optimizer step and per evaluation, in the shape of the
guard's metrics stream so that `trainguard report` plots it.

    {"type": "step", "step", "epoch", "loss", "grad_norm", "lr", "samples_per_s"}
    {"type": "eval", "step", "epoch", "val_loss", "samples"}

`step` is the 0-based index of the optimizer step just taken; NaN/Inf are written as strings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TextIO

from trainguard.pipeline.atomic import write_text_atomic


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Appends records to a JSON-lines file (flushed per line: a killed run keeps what it logged)."""

    def __init__(self, path: str | Path | None, resume_from_step: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._file: TextIO | None = None
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
        """Append one record of `kind` ("step" or "eval") with `values`."""
        if self._file is None:
            return
        self._file.write(json.dumps({"type": kind, **{k: _plain(v) for k, v in values.items()}}) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (records already written are on disk)."""
        if self._file is not None:
            self._file.close()
            self._file = None
