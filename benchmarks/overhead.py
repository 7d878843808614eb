"""Guard overhead: median time per training step, guarded / plain, both measured in this run.

    python benchmarks/overhead.py [--rounds 7] [--steps 220] [--models mlp,cnn,transformer] [--marginal]

Each round trains the model from the same initial weights for STEPS optimizer steps three times
(plain, under `trainguard.watch()`, and under the guard writing metrics), in alternating order;
the ratio is the median over rounds of the per-round ratios. A guarded run observes its first 20
steps in full (global module hooks, every detector, device reads) and then one step in 50
(docs/runtime.md, "When each rule looks"), so the figure for STEPS=220 includes 19 + 4 detailed
steps; "after 20" is the same ratio over the 200 steps after the first 20 (the steady state with
its four windows: the rate of a long run), "first 20 steps" the median per-step ratio
over the first 20 alone (the worst case). "+ metrics" is the guard with the metrics stream written
to a file (`watch(metrics=...)`, `run --metrics`). "mlp, DataLoader" feeds the same MLP from a
shuffling DataLoader: it adds the data probe's per-batch work and the row fingerprints of
training batches that TG504 takes on the first 20 steps.

`--marginal` measures instead the guard's cost per step after its first 20 steps, in
microseconds (windows and their lead-in steps included), on one model in one process: plain and
guarded blocks alternate on the same tensors (see `marginal`).

The benchmark runs with glibc told to keep freed memory (it re-executes itself with
`MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` set high, unless they are set already):
by default large freed blocks go back to the OS and are faulted in again, and which run of a
round pays those page faults depends on the order of allocations, not on the guard; on the CNN
that alone made guarded runs 6 % faster or slower than plain ones.

Times are the process's CPU time with one intra-op thread (`--threads 1`, the default): on a
shared 2-core machine wall-clock ratios move by several percent with the neighbours' load, CPU
time much less. `--clock wall` measures wall-clock time instead.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainguard
from trainguard.runtime.context import FULL_STEPS, WINDOW_EVERY


def mlp() -> tuple[nn.Module, Callable[[], tuple[torch.Tensor, torch.Tensor]]]:
    """About 1 ms per step on one CPU core: the worst case, where per-step costs show most."""
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    x, y = torch.randn(64, 256), torch.randint(0, 10, (64,))
    return model, lambda: (x, y)


def mlp_from_loader() -> tuple[nn.Module, Callable[[], tuple[torch.Tensor, torch.Tensor]]]:
    model, _ = mlp()
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64 * 50, 256, generator=generator), torch.randint(0, 10, (64 * 50,), generator=generator))
    batches = itertools.chain.from_iterable(itertools.repeat(DataLoader(data, batch_size=64, shuffle=True, generator=generator)))
    return model, lambda: next(batches)


def cnn() -> tuple[nn.Module, Callable[[], tuple[torch.Tensor, torch.Tensor]]]:
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 10),
    )
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    return model, lambda: (x, y)


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int = 512, dim: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=4 * dim, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens))).flatten(0, 1)


def transformer() -> tuple[nn.Module, Callable[[], tuple[torch.Tensor, torch.Tensor]]]:
    x = torch.randint(0, 512, (16, 64))
    return TinyTransformer(), lambda: (x, torch.randint(0, 512, (16 * 64,), generator=torch.Generator().manual_seed(0)))


MODELS = {"mlp": ("mlp (1 ms)", mlp), "mlp-loader": ("mlp, DataLoader", mlp_from_loader), "cnn": ("small cnn", cnn), "transformer": ("tiny transformer", transformer)}

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def train(model: nn.Module, batch: Callable[[], tuple[torch.Tensor, torch.Tensor]], steps: int, optimizer: torch.optim.Optimizer | None = None) -> list[float]:
    """Per-step times of `steps` steps, with a new AdamW unless `optimizer` is given."""
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps):
        start = clock()
        x, y = batch()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        times.append(clock() - start)
    return times


MODES = ("plain", "guarded", "metrics")


def run_mode(mode: str, model: nn.Module, batch: Callable, initial: dict[str, torch.Tensor], steps: int, seed: int, metrics_file: str) -> list[float]:
    # The same model object in every mode, reset to the same weights: a fresh model per run would
    # put its tensors at other addresses, and on this CPU that alone moves a step's time by
    # several percent from one run to the next, more than the guard's cost.
    model.load_state_dict(initial)
    torch.manual_seed(seed)
    if mode == "plain":
        return train(model, batch, steps)
    with trainguard.watch(echo=False, metrics=metrics_file if mode == "metrics" else None):
        return train(model, batch, steps)


def measure(make: Callable, rounds: int, steps: int, metrics_file: str) -> dict[str, float]:
    model, batch = make()
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    train(model, batch, steps=20)  # warm-up: allocator, kernels
    ratios: dict[str, list[float]] = {"guarded": [], "metrics": [], "steady": [], "detailed": []}
    plain_ms = []
    for index in range(rounds):
        order = MODES if index % 2 == 0 else tuple(reversed(MODES))
        times = {mode: run_mode(mode, model, batch, initial, steps, index, metrics_file) for mode in order}
        plain = times["plain"]
        for mode in ("guarded", "metrics"):
            ratios[mode].append(sum(times[mode][1:]) / sum(plain[1:]))
        ratios["steady"].append(sum(times["guarded"][20:]) / sum(plain[20:]))
        ratios["detailed"].append(statistics.median(times["guarded"][1:20]) / statistics.median(plain[1:20]))
        plain_ms.append(statistics.median(plain) * 1e3)
    return {"plain_ms": statistics.median(plain_ms), **{name: statistics.median(values) for name, values in ratios.items()}}


def marginal(make: Callable, rounds: int) -> tuple[float, float, float]:
    """The guard's cost per step after its first FULL_STEPS, in microseconds: one model and one
    optimizer in this process (the same tensors, so no layout luck), 100 plain steps, then a
    guarded session whose first FULL_STEPS steps are skipped and whose next 100 (two windows and
    their lead-in steps) are timed, then 100 plain steps again; the median and the quartiles over
    rounds of guarded minus the mean of the two plain blocks."""
    model, batch = make()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    steps = 2 * WINDOW_EVERY

    def block(count: int) -> float:
        return sum(train(model, batch, count, optimizer)) / count

    block(20)
    excess = []
    for _ in range(rounds):
        before = block(steps)
        with trainguard.watch(echo=False):
            block(FULL_STEPS)
            guarded = block(steps)
        excess.append((guarded - (before + block(steps)) / 2) * 1e6)
    low, middle, high = statistics.quantiles(excess, n=4)
    return middle, low, high


# glibc's thresholds, in bytes: keep every freed block in the heap (see the docstring).
STABLE_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def main() -> None:
    if not all(name in os.environ for name in STABLE_MALLOC):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **STABLE_MALLOC})
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=220)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--marginal", action="store_true", help="instead: the guard's cost per step after its first steps, in microseconds")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.clock} time, {args.rounds} rounds x {args.steps} steps")
    if args.marginal:
        print(f"{'model':<18}{'guarded - plain, us per step after the first ' + str(FULL_STEPS):>52}")
        for model in args.models.split(","):
            name, make = MODELS[model.strip()]
            middle, low, high = marginal(make, args.rounds)
            print(f"{name:<18}{middle:>30.1f} (quartiles {low:.1f} to {high:.1f})")
        return
    print(f"{'model':<18}{'plain ms/step':>14}{'guarded/plain':>15}{'after 20':>10}{'+ metrics':>11}{'first 20 steps':>16}")
    with tempfile.TemporaryDirectory() as folder:
        metrics_file = os.path.join(folder, "metrics.jsonl")
        for model in args.models.split(","):
            name, make = MODELS[model.strip()]
            r = measure(make, args.rounds, args.steps, metrics_file)
            print(f"{name:<18}{r['plain_ms']:>14.2f}{r['guarded']:>14.3f}x{r['steady']:>9.3f}x{r['metrics']:>10.3f}x{r['detailed']:>15.3f}x")


if __name__ == "__main__":
    main()
