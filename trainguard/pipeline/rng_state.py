"""The random number generators' states as tensors and plain numbers, so that a checkpoint holding
them loads with `torch.load(weights_only=True)` (numpy's state, as numpy returns it, does not)."""

from __future__ import annotations

import random
from typing import Any, cast

import torch


def seed_everything(seed: int) -> None:
    """Seed the torch (CPU and accelerator), numpy and python generators of this process."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(seed % 2**32)


def capture_rng() -> dict[str, Any]:
    """The states of the torch, CUDA (when present), numpy (when installed) and python generators."""
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy
    except ImportError:
        return state
    # The legacy tuple, numpy's default for the global generator (its stubs type the default as a dict).
    legacy = cast("tuple[str, Any, int, int, float]", numpy.random.get_state())
    kind, keys, position, has_gauss, cached_gaussian = legacy
    state["numpy"] = {
        "kind": str(kind),
        "keys": torch.from_numpy(keys.astype(numpy.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the generator states that `capture_rng` took."""
    torch.set_rng_state(state["torch"])
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy

        saved = state["numpy"]
        keys = saved["keys"].numpy().astype(numpy.uint32)
        numpy.random.set_state((saved["kind"], keys, saved["position"], saved["has_gauss"], saved["cached_gaussian"]))
