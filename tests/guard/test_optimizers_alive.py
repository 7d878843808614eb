"""Optimizers made before `watch()` are found by one scan of the collector's objects, and a process
that has made no optimizer yet (every `trainguard run`) is not scanned at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

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
