"""Optimizers made before `watch()` are found by one scan of the collector's objects, a process
that has made no optimizer yet (every `trainguard run`) is not scanned at all, and a scan that
fails leaves the optimizer hooks working."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import trainguard
from trainguard.runtime.probes import optimizers
from trainguard.runtime.probes.optimizers import optimizers_alive


class Renamed(torch.optim.SGD):
    """A subclass that inherits `step`: its instances are marked through SGD's wrapped `step`."""


def test_optimizers_of_library_and_user_classes_are_found_and_nothing_else() -> None:
    parameters = [torch.nn.Parameter(torch.zeros(2))]
    made = [torch.optim.Adam(parameters), Renamed(parameters, lr=0.1), torch.optim.SGD(parameters, lr=0.1)]
    found = list(optimizers_alive())
    assert all(isinstance(optimizer, torch.optim.Optimizer) for optimizer in found)
    assert {id(optimizer) for optimizer in made} <= {id(optimizer) for optimizer in found}


def test_a_process_that_made_no_optimizer_is_not_scanned_and_one_made_later_is_found() -> None:
    script = textwrap.dedent(
        """
        import gc
        import torch
        from trainguard.runtime.probes import optimizers

        scan = gc.get_objects
        def refuse():
            raise AssertionError("scanned")
        optimizers.gc.get_objects = refuse
        assert list(optimizers.optimizers_alive()) == []
        optimizers.gc.get_objects = scan
        made = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        assert [id(o) for o in optimizers.optimizers_alive()] == [id(made)]
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


def test_a_failing_scan_is_reported_and_the_optimizer_hooks_still_see_each_step(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[torch.optim.Optimizer]:
        raise RuntimeError("scan failed")

    monkeypatch.setattr(optimizers, "optimizers_alive", broken)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with trainguard.watch(echo=False) as guard:
        for _ in range(3):  # no zero_grad: TG101, seen by the step hooks alone
            F.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 2, (8,))).backward()
            optimizer.step()
    assert [finding.code for finding in guard.findings] == ["TG101"]
    assert "scan failed" in guard.session.internal_errors["install OptimizerProbe"]
