"""TG802 dataparallel-used: `nn.DataParallel` instead of DistributedDataParallel."""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView

DATA_PARALLEL = {"torch.nn.DataParallel", "torch.nn.parallel.DataParallel", "torch.nn.parallel.data_parallel.DataParallel"}


class DataParallelUsed(LintRule):
    """TG802, at the DataParallel call."""

    codes = ("TG802",)
    triggers = (frozenset(("DataParallel",)),)

    def on_call(self, event: ev.Call, ctx: TraceView) -> None:
        if event.qualname in DATA_PARALLEL:
            self.report(
                "TG802",
                event.node,
                "nn.DataParallel replicates the model and scatters every batch from one process each step: "
                "slower than DistributedDataParallel even on one machine, and no longer recommended",
            )
