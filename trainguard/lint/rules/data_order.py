"""TG501 train-loader-not-shuffled and TG502 sampler-epoch-not-set: the same data order every epoch.

TG501: a training loop (one that steps an optimizer) iterates a DataLoader built without
shuffle=True and without a sampler over a dataset known to be map-style (TensorDataset,
torchvision datasets, random_split/Subset, a file class deriving from Dataset). Reported at the
`for` line. An unshuffled validation loader is fine.
TG502: a DistributedSampler (shuffling) feeds a loader iterated in a training loop nested in an
outer (epoch) loop, and the file never calls set_epoch. Reported at the `for` line too.
"""

from __future__ import annotations

from trainguard.lint.rules import LintRule, line_of
from trainguard.lint.trace_view import TraceView
from trainguard.lint.values import Thing, things


def _map_style(ctx: TraceView, loader: Thing) -> bool:
    datasets = loader.facts.get("dataset") or frozenset()
    if not datasets:
        return False
    for dataset in datasets:
        if isinstance(dataset, Thing) and dataset.facts.get("map_style"):
            continue
        if isinstance(dataset, Thing) and dataset.kind == "instance" and _is_map_dataset_class(ctx, dataset.facts.get("class", "")):
            continue
        return False
    return True


def _is_map_dataset_class(ctx: TraceView, class_name: str) -> bool:
    info = ctx.script.classes.get(class_name)
    if info is None:
        return False
    return any(base in ("torch.utils.data.Dataset", "torch.utils.data.dataset.Dataset") for base in info.base_names) and ctx.script.find_method(class_name, "__getitem__") is not None


class DataOrder(LintRule):
    """TG501/TG502, decided per trace from the loops that iterate loaders and step optimizers."""

    codes = ("TG501", "TG502")
    triggers = (frozenset(("step", "DataLoader")),)  # a loader made in the trace, read by a stepping loop

    def end_trace(self, ctx: TraceView) -> None:
        """Check the loops of this trace that iterate a DataLoader and step an optimizer."""
        training_loops = ctx.stepping_loops()
        for entry in ctx.events("loop_start"):
            loop = entry.event.node
            if loop not in training_loops:
                continue
            for loader in things(entry.event.iterated, "loader"):
                samplers = loader.facts.get("sampler")
                if not samplers and loader.facts.get("shuffle") is False and _map_style(ctx, loader):
                    self.report(
                        "TG501",
                        loop,
                        f"the training loop reads {loader.name} (the DataLoader of line {line_of(loader.node)}) in the "
                        f"same order every epoch: it has no shuffle=True and no sampler",
                        evidence={"loader_line": line_of(loader.node)},
                    )
                for sampler in things(samplers or (), "sampler"):
                    if entry.loops and sampler.facts.get("shuffle") is not False and "set_epoch" not in ctx.script.attribute_names:
                        self.report(
                            "TG502",
                            loop,
                            f"{loader.name} reads a DistributedSampler (line {line_of(sampler.node)}) whose set_epoch() is "
                            f"never called: it shuffles with the same seed, so every epoch of the loop at line "
                            f"{line_of(entry.loops[-1])} sees one fixed order",
                            evidence={"sampler_line": line_of(sampler.node), "epoch_loop_line": line_of(entry.loops[-1])},
                        )
