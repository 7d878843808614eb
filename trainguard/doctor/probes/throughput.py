"""Throughput: samples per second of the input pipeline alone and of training steps alone, eager
fp32, under autocast (bf16; on a GPU also fp16) and under `torch.compile`.

Each mode gets a fresh copy and optimizer and trains on one batch of the loader's batch size for
up to `WINDOW` seconds after `WARMUP` steps (on a GPU, timed with `torch.cuda.synchronize`). The
loader is timed by iterating it (its first batch, which starts any workers, is not counted).
`torch.compile` is tried only when at least `COMPILE_RESERVE` seconds of the time budget are left
(compiling the examples' MLP took 3-7 s on a 2-core CPU; large models take longer); otherwise its row says why it was
skipped, with the compile time when it ran. When the loader delivers fewer samples per second than
eager training consumes, the input pipeline is the bottleneck: a warning, with the fix.
"""

from __future__ import annotations

import time
from typing import Callable, ContextManager, cast

import torch
from torch.utils.data import DataLoader

from trainguard.doctor.batches import Batch, batch_size_of, collate, read_samples, sample_count, to_device
from trainguard.doctor.context import ProbeContext
from trainguard.doctor.probe import Outcome, Plot, Probe, Table, make_finding
from trainguard.doctor.setup import describe_error
from trainguard.findings import Severity

WINDOW = 0.5
WARMUP = 3
COMPILE_RESERVE = 20.0
# Below this many seconds left, the remaining modes are not measured at all.
MINIMUM_LEFT = 1.0


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step: Callable[[], int], device: torch.device, window: float, warmup: int = WARMUP) -> tuple[float, float]:
    """(samples per second, seconds of the first `warmup` calls) of `step`, which returns its sample count."""
    started = time.perf_counter()
    for _ in range(warmup):
        step()
    _synchronize(device)
    warm = time.perf_counter()
    samples, now = 0, warm
    while now - warm < window:
        samples += step()
        _synchronize(device)
        now = time.perf_counter()
    return samples / (now - warm), warm - started


def _loader_step(data: DataLoader | object) -> Callable[[], int]:
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size_of(data))  # type: ignore[arg-type]
    iterator = iter(loader)

    def step() -> int:
        nonlocal iterator
        try:
            inputs, _ = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            inputs, _ = next(iterator)
        return sample_count(inputs)
    return step


def _training_step(context: ProbeContext, batch: Batch, precision: ContextManager[object] | None, compile_model: bool) -> Callable[[], int]:
    model = context.fresh_model()
    optimizer = context.fresh_optimizer(model)
    # torch.compile of a module is a module (an OptimizedModule); its stubs say only "callable".
    runnable = cast(torch.nn.Module, torch.compile(model)) if compile_model else model
    count = sample_count(batch[0])

    def step() -> int:
        optimizer.zero_grad(set_to_none=True)
        if precision is None:
            loss = context.loss(runnable, batch)
        else:
            with precision:
                loss = context.loss(runnable, batch)
        loss.backward()
        optimizer.step()
        return count
    return step


def _modes(context: ProbeContext, batch: Batch) -> list[tuple[str, Callable[[], Callable[[], int]]]]:
    device = context.device
    dtypes = [torch.bfloat16] + ([torch.float16] if device.type == "cuda" else [])
    modes: list[tuple[str, Callable[[], Callable[[], int]]]] = [("eager fp32", lambda: _training_step(context, batch, None, False))]
    for dtype in dtypes:
        name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
        modes.append((f"autocast {name}", _autocast_mode(context, batch, dtype)))
    modes.append(("torch.compile", lambda: _training_step(context, batch, None, True)))
    return modes


def _autocast_mode(context: ProbeContext, batch: Batch, dtype: torch.dtype) -> Callable[[], Callable[[], int]]:
    return lambda: _training_step(context, batch, torch.autocast(context.device.type, dtype=dtype), False)


def _outcome(context: ProbeContext, rows: list[list[object]], rates: dict[str, float], batch_size: int) -> Outcome:
    """The probe's result from the rows and rates measured so far."""
    device = context.device
    loader_rate, model_rate = rates["loader alone"], rates.get("eager fp32")
    evidence: dict[str, object] = {"device": str(device), "batch_size": batch_size, "cpu_threads": torch.get_num_threads(),
                                   **{name.replace(" ", "_") + "_samples_per_s": round(rate, 1) for name, rate in rates.items()}}
    table = Table(["mode", "samples/s", "ms/batch", "note"], rows)
    # A log scale: the loader alone is often 100x faster than training and would flatten every mode's bar.
    plot = Plot("bars", "throughput (samples/s, log scale)", list(rates.items()), log_y=True)
    if model_rate is None:
        return Outcome("training steps could not be timed", [], evidence, table=table, plot=plot, skipped=True)
    findings = []
    if loader_rate < model_rate:
        evidence["bottleneck"] = "input pipeline"
        findings.append(make_finding(
            "throughput",
            f"the input pipeline is the bottleneck: the loader delivers {loader_rate:,.0f} samples/s, training consumes "
            f"{model_rate:,.0f} samples/s, so the {device.type.upper()} waits for data",
            fix="use DataLoader(num_workers=N, pin_memory=True, persistent_workers=True), and precompute expensive transforms",
            place=context.setup_place, evidence=dict(evidence), severity=Severity.WARNING))
    else:
        evidence["bottleneck"] = "model"
    best = max((name for name in rates if name != "loader alone"), key=rates.__getitem__)
    summary = (f"bottleneck: {evidence['bottleneck']} (loader {loader_rate:,.0f} samples/s, eager fp32 training "
               f"{model_rate:,.0f} samples/s); fastest: {best} ({rates[best]:,.0f} samples/s)")
    return Outcome(summary, findings, evidence, table=table, plot=plot)


def run(context: ProbeContext) -> Outcome:
    """Time the loader alone and training steps in each mode; name the bottleneck."""
    device = context.device
    data = context.setup.train_data
    batch = to_device(collate(data, read_samples(data, batch_size_of(data))), device)
    batch_size = sample_count(batch[0])
    rows: list[list[object]] = []
    rates: dict[str, float] = {}
    loader_rate, _ = measure(_loader_step(data), torch.device("cpu"), WINDOW, warmup=1)
    rates["loader alone"] = loader_rate
    rows.append(["loader alone", round(loader_rate, 1), "", "one pass of the training data pipeline"])
    for name, build in _modes(context, batch):
        left = context.remaining()
        if left < MINIMUM_LEFT or (name == "torch.compile" and left < COMPILE_RESERVE):
            rows.append([name, None, "", f"skipped: {left:.0f} s of the time budget left (needs {COMPILE_RESERVE if name == 'torch.compile' else MINIMUM_LEFT:g} s)"])
            continue
        # What to report if the budget runs out during this mode (compiling can take longer than the reserve).
        context.partial = _outcome(context, rows + [[name, None, "", "stopped: the time budget ran out during this measurement"]], rates, batch_size)
        try:
            rate, warmup_seconds = measure(build(), device, min(WINDOW, left / 4))
        except Exception as error:
            rows.append([name, None, "", f"failed: {describe_error(error)}"])
            continue
        rates[name] = rate
        note = f"first {WARMUP} steps took {warmup_seconds:.1f} s (compiling)" if name == "torch.compile" else ""
        rows.append([name, round(rate, 1), round(1000 * batch_size / rate, 3), note])
    return _outcome(context, rows, rates, batch_size)


PROBE = Probe("throughput", "Throughput and bottleneck", run)
