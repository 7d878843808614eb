"""The progress bar on stderr: steps, loss and throughput (rich; static when not on a terminal)."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trainguard.console import make_console


class TrainingProgress:
    """A context manager; `update()` after each optimizer step. Does nothing when disabled."""

    def __init__(self, total_steps: int, done_steps: int, enabled: bool) -> None:
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(), console=make_console(sys.stderr), transient=False,
            )
            self._task = self._progress.add_task("train", total=total_steps, completed=done_steps, status="")

    def __enter__(self) -> TrainingProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def update(self, steps_taken: int, loss: float, samples_per_s: float | None) -> None:
        """Show the steps taken, the last loss and the throughput."""
        if self._progress is None:
            return
        speed = f", {samples_per_s:,.0f} samples/s" if samples_per_s else ""
        self._progress.update(self._task, completed=steps_taken, status=f"loss {loss:.4f}{speed}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
