"""The doctor's tests train tiny models in-process: one intra-op thread is the fastest for them
and keeps them fast when other test processes share the machine's cores."""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
