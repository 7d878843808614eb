"""Suite-wide settings for `pytest -n N` (what `make test` runs).

The end-to-end tests marked `slow` (each many seconds: training subprocesses, torchrun jobs,
torch.compile) are moved to the front and, under xdist, tests are handed out one at a time (instead
of a quarter of each worker's share at once): the workers start by sharing the slow tests and then
finish together, instead of one worker receiving all of them in its first chunk. Every test process
and the training scripts it starts use one intra-op thread: the workers already fill the cores, and
more threads than cores make PyTorch's thread pool wait on itself.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: an end-to-end test of many seconds, run first so that the workers share them")
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the subprocesses the tests start
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: each group keeps its order


@pytest.fixture(autouse=True)
def _no_guard_left_behind():
    """Fail the test that leaves a guard installed or PyTorch's global module hooks behind: the
    next test in the same worker would inherit its stale state (a leaked session once made a later,
    correct Lightning run report modules of an earlier test's model as unregistered)."""
    yield
    import sys

    if "trainguard.runtime.session" not in sys.modules:
        return
    from torch.nn.modules import module

    from trainguard.runtime.api import active_session, unwatch

    leaked_session = active_session() is not None
    leaked_hooks = len(module._global_forward_pre_hooks) + len(module._global_forward_hooks)
    unwatch()
    module._global_forward_pre_hooks.clear()
    module._global_forward_hooks.clear()
    assert not leaked_session, "the test left a trainguard session installed"
    assert not leaked_hooks, f"the test left {leaked_hooks} global module hooks installed"
