"""fit() overhead: time per optimizer step of `trainguard.pipeline.fit` / an equivalent hand-written
loop, both measured in this run.

    python benchmarks/pipeline_overhead.py [--rounds 7] [--steps 300] [--threads 1]

The hand-written loop is what a careful user writes: a shuffled DataLoader with its own generator,
zero_grad(set_to_none=True), forward, loss, backward, optimizer step. fit() runs the same model,
data, batch size and optimizer with the guard off, no checkpoints and no validation, so the ratio
is the loop's own cost (its window bookkeeping, loss check, a gradient norm every
log_every_steps=10 steps and the metrics it keeps); "fit + guard" adds the runtime guard, and
"hand + guard" is the hand-written loop under the guard (the guard's share alone). Each
round builds fresh models and alternates the order; the ratio is the median over rounds of the
per-round ratios. A per-step time is the marginal one, (t(STEPS) - t(STEPS/4)) / (3 STEPS/4), so
that one-off costs (building loaders, installing the guard) do not count as per-step costs. Times
are process CPU time (steadier than wall clock on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainguard.pipeline import FitConfig, fit

BATCH = 64


def _model() -> tuple[nn.Module, torch.optim.Optimizer]:
    """About 1 ms per step on one core: the small model on which per-step costs show most."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def hand_written(data: TensorDataset, steps: int) -> float:
    """The plain loop's CPU time for `steps` optimizer steps."""
    model, optimizer = _model()
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(0))
    started = time.process_time()
    done = 0
    while done < steps:
        for inputs, targets in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    return time.process_time() - started


def guarded_hand_written(data: TensorDataset, steps: int) -> float:
    """The plain loop under `trainguard.watch()`: the guard's own share, for comparison."""
    import trainguard

    with trainguard.watch(echo=False):
        return hand_written(data, steps)


def with_fit(guard: bool) -> Callable[[TensorDataset, int], float]:
    """fit()'s CPU time for `steps` optimizer steps, with or without the guard."""

    def run(data: TensorDataset, steps: int) -> float:
        import trainguard

        model, optimizer = _model()
        config = FitConfig(epochs=10**6, max_steps=steps, batch_size=BATCH, guard=guard, progress=False)
        # fit() uses an installed guard: this one prints nothing (the random labels rightly make
        # it report loss-not-decreasing), as for the guarded hand-written loop.
        with trainguard.watch(echo=False) if guard else nullcontext():
            started = time.process_time()
            fit(model, nn.CrossEntropyLoss(), optimizer, data, config=config)
            return time.process_time() - started

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(BATCH * 50, 256, generator=generator), torch.randint(0, 10, (BATCH * 50,), generator=generator))
    contenders = {"fit": with_fit(guard=False), "fit + guard": with_fit(guard=True), "hand + guard": guarded_hand_written}
    hand_written(data, 20)  # warm-up: first-call costs (allocator, lazy imports) out of the rounds
    for run in contenders.values():
        run(data, 20)
    ratios: dict[str, list[float]] = {name: [] for name in contenders}
    plain_times = []

    def per_step(run: Callable[[TensorDataset, int], float]) -> float:
        short = args.steps // 4
        return (run(data, args.steps) - run(data, short)) / (args.steps - short)

    for round_index in range(args.rounds):
        for name, run in (contenders.items() if round_index % 2 else reversed(list(contenders.items()))):
            plain = per_step(hand_written)
            plain_times.append(plain)
            ratios[name].append(per_step(run) / plain)
    print(f"hand-written loop: {statistics.median(plain_times) * 1e3:.3f} ms/step (CPU time, {args.threads} thread)")
    for name, values in ratios.items():
        print(f"{name:12s} / hand-written: {statistics.median(values):.3f}x  (rounds: {', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
