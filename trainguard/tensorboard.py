"""TensorBoard scalars for the guard's metrics stream and fit()'s metrics log: tensorboard is
optional, so a writer exists only when it is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def summary_writer(folder: str | Path, purge_step: int | None = None) -> Any:
    """A SummaryWriter into `folder`, or None when tensorboard is not installed.

    `purge_step`: a resumed run's first step; TensorBoard hides the events the interrupted run
    wrote from there on, which the resumed run writes again.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)
