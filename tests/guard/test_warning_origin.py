"""PyTorch's own warnings, raised inside calls the guard wraps, still name the user's line."""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Callable

import pytest
import torch
import torch.nn.functional as F

import trainguard


def _mse_with_mismatched_sizes() -> int:
    F.mse_loss(torch.randn(4, 1), torch.randn(4))  # "Using a target size ..." (stacklevel=2)
    return _line_above()


def _scheduler_before_optimizer() -> int:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    model(torch.randn(3, 2)).sum().backward()
    scheduler.step()  # "Detected call of `lr_scheduler.step()` before `optimizer.step()`"
    return _line_above()


def _line_above() -> int:
    import sys

    return sys._getframe(1).f_lineno - 1


def _caught(call: Callable[[], int], guarded: bool) -> tuple[list[tuple[str, int, str]], int]:
    with trainguard.watch(echo=False) if guarded else nullcontext():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            line = call()
    return [(w.filename, w.lineno, str(w.message)[:40]) for w in caught], line


@pytest.mark.parametrize("call", [_mse_with_mismatched_sizes, _scheduler_before_optimizer])
def test_a_wrapped_calls_warning_names_the_users_line_as_without_the_guard(call: Callable[[], int]) -> None:
    plain, line = _caught(call, guarded=False)
    guarded, _ = _caught(call, guarded=True)
    assert guarded == plain
    assert [(path, lineno) for path, lineno, _ in guarded] == [(__file__, line)]


def test_once_per_location_and_error_filters_work_as_without_the_guard() -> None:
    with trainguard.watch(echo=False):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            for _ in range(3):
                F.mse_loss(torch.randn(4, 1), torch.randn(4))  # one warning: same line
            F.l1_loss(torch.randn(4, 1), torch.randn(4))  # another line, another warning
        assert len(caught) == 2 and all(w.filename == __file__ for w in caught)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(UserWarning, match="Using a target size"):
                F.mse_loss(torch.randn(4, 1), torch.randn(4))


def test_warnings_warn_is_restored_when_the_guard_is_removed() -> None:
    original = warnings.warn
    with trainguard.watch(echo=False):
        assert warnings.warn is not original
    assert warnings.warn is original
