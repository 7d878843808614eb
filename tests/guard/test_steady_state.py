"""The guard's steady state: between detailed steps it reads no device value and installs no
module hook, and what it summed on the device there is still judged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainguard
from trainguard.runtime.api import active_session
from trainguard.runtime.session import FULL_STEPS, WINDOW_EVERY

PACKAGE = str(Path(trainguard.__file__).parent)
READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy")


class HostReads:
    """Counts calls of the Tensor methods that copy a device value to the host, made by the
    guard's own code (the calling frame is in the trainguard package), while `counting`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counting = False
        self.calls: list[str] = []
        for name in READS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, getattr(torch.Tensor, name)))

    def _wrap(self, name: str, original):  # type: ignore[no-untyped-def]
        reads = self

        def read(tensor, *args, **kwargs):  # type: ignore[no-untyped-def]
            caller = sys._getframe(1).f_code
            if reads.counting and caller.co_filename.startswith(PACKAGE):
                reads.calls.append(f"{name} from {caller.co_name} ({caller.co_filename}:{sys._getframe(1).f_lineno})")
            return original(tensor, *args, **kwargs)

        return read


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def test_steady_state_steps_read_no_device_value_and_install_no_module_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = HostReads(monkeypatch)
    torch.manual_seed(0)
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    steady_steps = 0
    with trainguard.watch(echo=False) as handle:
        session = active_session()
        for _ in range(FULL_STEPS):
            _step(model, optimizer, x, y)
        for _ in range(3 * WINDOW_EVERY):
            steady = not session.detailed
            reads.counting = steady
            if steady:
                steady_steps += 1
                assert not nn.modules.module._global_forward_pre_hooks and not nn.modules.module._global_forward_hooks
            _step(model, optimizer, x, y)
            reads.counting = False
    assert steady_steps == 3 * (WINDOW_EVERY - 1)  # the rest were windows
    assert reads.calls == []
    assert handle.findings == []


def _regression_with_a_bad_target(steps: int, bad_step: int) -> tuple[list, int | None]:
    """A regression whose target is Inf at `bad_step` (lr 0: the weights stay finite); its
    findings, and the step at whose end TG306 was first known."""
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    known_at = None
    with trainguard.watch(echo=False, select="TG306") as handle:
        for step in range(steps):
            optimizer.zero_grad()
            target = torch.full((8, 1), float("inf") if step == bad_step else 1.0)
            F.mse_loss(model(torch.ones(8, 4)), target).backward()
            optimizer.step()
            if known_at is None and handle.findings:
                known_at = step
    return handle.findings, known_at


def test_a_non_finite_loss_in_a_steady_state_step_is_reported_with_its_step_at_the_next_window() -> None:
    bad_step = FULL_STEPS + 3
    window = FULL_STEPS + WINDOW_EVERY - FULL_STEPS % WINDOW_EVERY  # the first window after the full steps
    findings, known_at = _regression_with_a_bad_target(window + 2, bad_step)
    (finding,) = findings
    assert finding.step == bad_step and known_at == window


def test_steady_state_losses_after_the_last_window_are_read_at_the_end() -> None:
    findings, known_at = _regression_with_a_bad_target(FULL_STEPS + 3, FULL_STEPS + 2)
    (finding,) = findings
    assert finding.step == FULL_STEPS + 2 and known_at is None  # known when the guard was removed


def test_an_evaluation_in_the_steady_state_is_observed_in_full() -> None:
    # Evaluation forwards in train mode (no model.eval()): the mode change begins a phase.
    torch.manual_seed(0)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    with trainguard.watch(echo=False, select="TG201") as handle:
        for step in range(FULL_STEPS + 5):
            _step(model, optimizer, x, y)
            if step == FULL_STEPS + 2:
                with torch.no_grad():
                    model(x)
    (finding,) = handle.findings
    assert finding.code == "TG201" and finding.step == FULL_STEPS + 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_steady_state_steps_never_synchronise_the_device() -> None:
    torch.manual_seed(0)
    model = _model().cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    x, y = torch.randn(32, 8, device="cuda"), torch.randint(0, 3, (32,), device="cuda")
    with trainguard.watch(echo=False) as handle:
        session = active_session()
        for _ in range(FULL_STEPS + 3 * WINDOW_EVERY):
            steady = not session.detailed
            if steady:
                torch.cuda.set_sync_debug_mode("error")
            try:
                _step(model, optimizer, x, y)
            finally:
                torch.cuda.set_sync_debug_mode(0)
    assert handle.findings == []


def test_strict_stops_a_steady_state_step_before_its_update() -> None:
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    bad_step = FULL_STEPS + 3
    with pytest.raises(trainguard.GuardStop) as stopped:
        with trainguard.watch(echo=False, select="TG306", strict=True):
            for step in range(FULL_STEPS + WINDOW_EVERY):
                optimizer.zero_grad()
                target = torch.full((8, 1), float("inf") if step == bad_step else 1.0)
                F.mse_loss(model(torch.ones(8, 4)), target).backward()
                optimizer.step()
    assert stopped.value.finding.step == bad_step
    assert torch.isfinite(model.weight).all()  # the step with the Inf loss never updated


def test_graphs_retained_only_on_window_steps_are_not_a_loop_habit() -> None:
    # retain_graph=True on every 10th step after the first 20: each is a detailed step, but no two
    # of them are consecutive, so TG111 (every backward of consecutive steps) stays silent.
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with trainguard.watch(echo=False, select="TG111") as handle:
        for step in range(FULL_STEPS + 3 * WINDOW_EVERY + 1):
            optimizer.zero_grad()
            loss = F.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1))
            loss.backward(retain_graph=step >= FULL_STEPS and step % WINDOW_EVERY == 0)
            optimizer.step()
    assert handle.findings == []


def _first_window_after(step: int) -> int:
    return (step // WINDOW_EVERY + 1) * WINDOW_EVERY


def _train_dropping_zero_grad(from_step: int, steps: int, zero_grad_between_backward_and_step: bool = False) -> list:
    """A loop that clears its gradients as it should until `from_step`, then stops clearing them
    (or, with `zero_grad_between_backward_and_step`, clears them in the wrong place)."""
    torch.manual_seed(0)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    with trainguard.watch(echo=False, select="TG101,TG114") as handle:
        for step in range(steps):
            if step < from_step:
                optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            if step >= from_step and zero_grad_between_backward_and_step:
                optimizer.zero_grad(set_to_none=False)
            optimizer.step()
    return handle.findings


def test_gradients_never_cleared_after_the_full_steps_are_found_at_the_next_window() -> None:
    # Between windows the gradient chain is not followed (zero_grad passes through, the sample's
    # hook returns at once); the step before each window follows it, so the window still knows.
    start = FULL_STEPS + 7
    window = _first_window_after(start)
    (finding,) = _train_dropping_zero_grad(start, window + 1)
    assert finding.code == "TG101" and finding.step == window


def test_gradients_cleared_every_step_stay_silent_across_windows() -> None:
    assert _train_dropping_zero_grad(10**6, FULL_STEPS + 3 * WINDOW_EVERY + 1) == []


def test_zero_grad_moved_between_backward_and_step_after_the_full_steps_is_found_at_the_next_window() -> None:
    # The window's first step compares with a gradient that zero_grad(set_to_none=False) cleared
    # in the step before it, which the guard follows: not stale (TG101). That followed step and
    # the window's are the two steps in a row TG114 wants: it is reported at the window.
    start = FULL_STEPS + 7
    window = _first_window_after(start)
    (finding,) = _train_dropping_zero_grad(start, window + 2, zero_grad_between_backward_and_step=True)
    assert finding.code == "TG114" and finding.step == window
