"""Running the selected probes on a loaded set-up, within the time budget, one result per probe.

Each probe runs in a worker thread while the main thread waits for it until the budget is spent:
a forward pass that hangs (or a step far slower than the budget) cannot stop the report, even
inside C code that no signal reaches. A probe still running then is reported as timed out (or by
what it measured so far, when it left a `ProbeContext.partial` outcome), the remaining probes are
skipped, and the abandoned thread (a daemon) ends with the process.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

import torch

from trainguard.catalogue import split_names
from trainguard.doctor.context import ProbeContext
from trainguard.doctor.probe import Outcome, Probe, ProbeResult, make_finding
from trainguard.doctor.probes import PROBE_NAMES, PROBES
from trainguard.doctor.setup import LoadedTarget, describe_error
from trainguard.findings import Severity

# The probe that reports a forward pass or loss that raises; the others then skip instead.
_REPORTS_BLOCKERS = "loss-at-init"


def select_probes(only: str | Iterable[str] | None = None, skip: str | Iterable[str] | None = None) -> list[Probe]:
    """The probes named by `--only` (all by default) minus those named by `--skip`, in run order."""
    only_names, skip_names = split_names(only), split_names(skip)
    unknown = [name for name in [*only_names, *skip_names] if name.strip() not in PROBE_NAMES]
    if unknown:
        raise ValueError(f"unknown probe {unknown[0].strip()!r}: the probes are {', '.join(PROBE_NAMES)}")
    wanted = {name.strip() for name in only_names} or set(PROBE_NAMES)
    selected = [probe for probe in PROBES if probe.name in wanted - {name.strip() for name in skip_names}]
    if not selected:
        raise ValueError("--only and --skip leave no probe to run")
    return selected


def default_device() -> torch.device:
    """Where the probes train: the GPU when there is one (device parity compares it with the CPU)."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _blocked(probe: Probe, reason: str, reported_elsewhere: bool) -> Outcome:
    if reported_elsewhere:
        return Outcome.skip(f"not run: {reason} on the first training batch (see {_REPORTS_BLOCKERS})")
    return Outcome(f"{reason} on the first training batch", [make_finding(
        probe.name, f"{reason} on the first training batch", fix="make the model and loss_fn run on a batch of train_data",
        severity=Severity.ERROR)])


def _attempt(probe: Probe, context: ProbeContext, reported_elsewhere: bool) -> Outcome:
    try:
        reason = probe.applies(context)
        if reason is not None:
            return Outcome.skip(reason)
        blocker = context.blocker(probe.requires)
        if blocker is not None:
            return _blocked(probe, blocker, reported_elsewhere)
        return probe.run(context)
    except BaseException as error:  # in the probe's own thread: even SystemExit from the set-up is its result
        message = f"the {probe.name} probe stopped on {describe_error(error)}"
        return Outcome(message, [make_finding(
            probe.name, message, fix="run one training step of the set-up by hand to see where it fails",
            place=context.setup_place, severity=Severity.ERROR)])


def _timed_out(probe: Probe, context: ProbeContext, seconds: float) -> Outcome:
    message = (f"the {probe.name} probe did not finish within the time budget of {context.budget:g} s "
               f"(stopped after {seconds:.1f} s): something in it hangs or needs more time than the budget left")
    return Outcome(f"timed out after {seconds:.1f} s", [make_finding(
        probe.name, message, fix="raise --budget; if the probe still times out, run one training step of the set-up by hand to see where it hangs",
        place=context.setup_place, severity=Severity.WARNING)], {"timed_out_after_s": round(seconds, 3)})


def _run_one(probe: Probe, context: ProbeContext, reported_elsewhere: bool) -> tuple[Outcome, bool]:
    """The probe's outcome, and whether it timed out (its thread is then left running)."""
    if context.remaining() <= 0:
        return Outcome.skip(f"not run: the time budget of {context.budget:g} s was spent before this probe started"), False
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    outcomes: list[Outcome] = []
    context.partial = None

    def work() -> None:
        if devices:  # the current CUDA device is per thread
            torch.cuda.set_device(devices[0])
        outcomes.append(_attempt(probe, context, reported_elsewhere))

    # Each probe starts from the same random state, so its result does not depend on which probes
    # ran before it, and the caller's random state is left as it was (forked here, in the waiting
    # thread, so that an abandoned probe does not restore it later).
    started = time.perf_counter()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        worker = threading.Thread(target=work, name=f"trainguard-doctor-{probe.name}", daemon=True)
        worker.start()
        worker.join(timeout=max(context.remaining(), 0.0))
    if worker.is_alive():
        seconds = time.perf_counter() - started
        if context.partial is not None:  # what it measured before the budget ran out
            partial = context.partial
            partial.summary += f" (stopped after {seconds:.1f} s: the time budget ran out)"
            return partial, True
        return _timed_out(probe, context, seconds), True
    return outcomes[0], False


def run_probes(target: LoadedTarget, probes: Iterable[Probe], budget: float, device: torch.device | None = None,
               on_start: Callable[[Probe], None] | None = None,
               on_done: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
    """Run `probes` on `target` in order; `budget` seconds for all of them (probes that find it
    spent are skipped, timing probes shorten their measurements, a probe still running when it is
    spent is stopped as timed out and the rest are skipped)."""
    selected = list(probes)
    context = ProbeContext(target, device or default_device(), budget)
    reported_elsewhere = any(probe.name == _REPORTS_BLOCKERS for probe in selected)
    results = []
    hung: str | None = None
    for probe in selected:
        if on_start is not None:
            on_start(probe)
        started = time.perf_counter()
        if hung is not None:
            outcome = Outcome.skip(f"not run: the time budget of {budget:g} s was spent while {hung} was running")
        else:
            outcome, timed_out = _run_one(probe, context, reported_elsewhere and probe.name != _REPORTS_BLOCKERS)
            hung = probe.name if timed_out else None
        result = ProbeResult.from_outcome(probe, outcome, time.perf_counter() - started)
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results
