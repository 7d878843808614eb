"""Training checkpoints: what they hold, how they are written (atomically) and read (without pickle).

A checkpoint is a dict that `torch.load(weights_only=True)` can read:

    format          "trainguard-checkpoint"    version   1
    model           model.state_dict()         optimizer optimizer.state_dict()
    scheduler       state_dict() or None       scaler    GradScaler.state_dict() or None
    rng             per rank (a list in rank order): torch / cuda / numpy / python generator states
    position        {"epoch", "batch", "step"}: where the NEXT micro-batch comes from, and the
                    number of optimizer steps taken (always written at a step boundary)
    fingerprint     seed, batch size, accumulation steps, training samples, world size (must match)
    best            {"metric", "value"}: the best value so far of the metric that picks best.pt
                    (FitConfig.best_metric), or None before the first validation
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainguard.pipeline.atomic import atomic_path, sweep_stale_temporaries

FORMAT = "trainguard-checkpoint"
VERSION = 2  # 2: `best` (any validation metric) replaced `best_val_loss`
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


class CheckpointError(Exception):
    """A checkpoint that cannot be used: unreadable, foreign, or made for another model or run."""


@dataclass(frozen=True)
class Position:
    """Where training stands: the epoch and micro-batch the next window starts at, steps taken."""

    epoch: int = 0
    batch: int = 0
    step: int = 0

    def to_dict(self) -> dict[str, int]:
        """The checkpoint's `position` entry."""
        return {"epoch": self.epoch, "batch": self.batch, "step": self.step}


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (no pickle code runs) or raise CheckpointError saying why not."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, missing file: all "not usable"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a trainguard checkpoint (no format marker {FORMAT!r})")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')!r}; this trainguard reads version {VERSION}")
    return state


class CheckpointStore:
    """The checkpoints/ folder: rolling `step-NNNNNNNNN.pt` files (the last `keep_last`) and `best.pt`.

    Opening it sweeps the temporary files of writers that were killed.
    """

    def __init__(self, folder: str | Path, keep_last: int, writer: bool = True) -> None:
        self.folder = Path(folder)
        self.keep_last = keep_last
        if writer:  # under DDP only rank 0 writes, and only it may sweep
            self.folder.mkdir(parents=True, exist_ok=True)
            sweep_stale_temporaries(self.folder)

    @property
    def best_path(self) -> Path:
        """Where the checkpoint with the lowest validation loss is kept."""
        return self.folder / "best.pt"

    def step_paths(self) -> list[Path]:
        """The rolling checkpoints, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [(int(match.group(1)), path) for path in self.folder.iterdir() if (match := _STEP_FILE.match(path.name))]
        return [path for _, path in sorted(found)]

    def save(self, state: dict[str, Any], step: int) -> Path:
        """Write the checkpoint of `step`, then (never before) drop those beyond the last `keep_last`."""
        path = self.folder / f"step-{step:09d}.pt"
        write_checkpoint(path, state)
        for old in self.step_paths()[:-self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def save_best(self, state: dict[str, Any]) -> Path:
        """Replace best.pt with `state` (atomically)."""
        write_checkpoint(self.best_path, state)
        return self.best_path

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that loads (unreadable newer ones are skipped with a warning), or
        None when there is none; CheckpointError when there are some but none loads."""
        failures = []
        for path in reversed(self.step_paths()):
            try:
                return path, load_checkpoint(path)
            except CheckpointError as error:
                sys.stderr.write(f"trainguard: skipping {error}\n")
                failures.append(error)
        if failures:
            raise CheckpointError(f"no checkpoint in {self.folder} can be loaded: {failures[0]}")
        return None


def write_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """`torch.save` through a temporary file: a kill mid-write leaves the previous file intact."""
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def build_state(*, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                rng: list[dict[str, Any]], position: Position, fingerprint: dict[str, int],
                best: dict[str, Any] | None) -> dict[str, Any]:
    """The checkpoint dict (see the module docstring)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng,
        "position": position.to_dict(),
        "fingerprint": fingerprint,
        "best": best,
    }


def apply_state(state: dict[str, Any], *, path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: Any, scaler: Any, fingerprint: dict[str, int]) -> Position:
    """Load model, optimizer, scheduler and scaler states; return the position to continue from.

    The RNG states are NOT restored here: that must happen after the resumed data iterator is
    built (see fit()).
    """
    if state["fingerprint"] != fingerprint:
        differing = ", ".join(f"{key}={state['fingerprint'].get(key)} (now {value})"
                              for key, value in fingerprint.items() if state["fingerprint"].get(key) != value)
        raise CheckpointError(f"{path} was written by a run with other settings ({differing}); resume with the same ones")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not match this model ({str(error).splitlines()[0]})") from None
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as error:
        raise CheckpointError(f"{path} does not match this optimizer ({error})") from None
    _load_optional(path, "scheduler", state["scheduler"], scheduler)
    _load_optional(path, "scaler", state["scaler"], scaler if scaler is not None and scaler.is_enabled() else None)
    return Position(**state["position"])


def _load_optional(path: Path, name: str, saved: dict[str, Any] | None, target: Any) -> None:
    if (saved is None) != (target is None):
        has = "has" if saved is not None else "has no"
        raise CheckpointError(f"{path} {has} {name} state but this run {'has no' if target is None else 'has a'} {name}")
    if target is not None:
        target.load_state_dict(saved)
