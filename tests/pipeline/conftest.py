"""The pipeline tests train tiny models, for which one intra-op thread is fastest; on a shared
2-core machine, two spinning OpenMP threads per process made them up to 5x slower."""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the subprocesses the tests start
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
