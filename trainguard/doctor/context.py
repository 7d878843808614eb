"""What every probe works with: fresh copies of the user's model and optimizer (the user's own
objects are never trained or changed), a fixed training batch, the time budget, and places in the
user's code to point findings at."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from trainguard.doctor.batches import Batch, batch_size_of, collate, forward, read_samples, to_device
from trainguard.doctor.places import Place, place_of
from trainguard.doctor.probe import Outcome, Requirement
from trainguard.doctor.setup import LoadedTarget, Setup, describe_error

# Probes train on one batch of the loader's size, capped so that a large batch size does not make
# the doctor slow on a CPU; the overfit and gradient probes only need a few dozen samples.
MAX_PROBE_BATCH = 64


@dataclass
class ProbeContext:
    """The loaded set-up, the device the probes train on and the time budget, shared by all probes
    of one run; the probes' batch and the forward/loss check are computed once."""

    target: LoadedTarget
    device: torch.device
    budget: float
    started: float = field(default_factory=time.monotonic)
    _batch: Batch | None = field(default=None, repr=False)
    _blockers: dict[Requirement, str | None] = field(default_factory=dict, repr=False)
    # What a long-running probe has measured so far (throughput, before each measurement): the
    # runner reports it when the budget runs out mid-probe, instead of only "timed out".
    partial: Outcome | None = field(default=None, repr=False)

    @property
    def setup(self) -> Setup:
        """The user's set-up (never trained or changed: probes use `fresh_model`)."""
        return self.target.setup

    def remaining(self) -> float:
        """Seconds left of the doctor's time budget."""
        return self.budget - (time.monotonic() - self.started)

    def fresh_model(self, device: torch.device | None = None) -> nn.Module:
        """A copy of the user's model (as it was returned) in train mode on `device`."""
        return copy.deepcopy(self.setup.model).to(device or self.device).train()

    def fresh_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """An optimizer from the set-up's factory for `model`'s parameters."""
        return self.setup.optimizer(model.parameters())

    def batch(self, device: torch.device | None = None) -> Batch:
        """The probes' training batch: the same samples for every probe, spread over the data."""
        if self._batch is None:
            size = min(batch_size_of(self.setup.train_data), MAX_PROBE_BATCH)
            self._batch = collate(self.setup.train_data, read_samples(self.setup.train_data, size))
        return to_device(self._batch, device or self.device)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """`loss_fn(model(inputs), targets)` on `batch`."""
        inputs, targets = batch
        return self.setup.loss_fn(forward(model, inputs), targets)

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch) -> float:
        """One plain optimizer step on `batch`; returns the loss before the step."""
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(model, batch)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def model_place(self, pattern: str | None = None) -> Place:
        """Where the model's class is defined (or its line matching `pattern`)."""
        return place_of(type(self.setup.model), pattern)

    @property
    def setup_place(self) -> Place:
        """Where the TARGET's function is defined."""
        return self.target.path, self.target.line

    def blocker(self, requirement: Requirement) -> str | None:
        """Why the model's forward pass (or the loss) cannot run on the training batch, or None."""
        if requirement == "nothing":
            return None
        if requirement not in self._blockers:
            self._blockers["forward"] = self._blockers["loss"] = None
            model = self.fresh_model()
            inputs, targets = self.batch()
            try:
                output = forward(model, inputs)
            except Exception as error:
                self._blockers["forward"] = self._blockers["loss"] = f"the model's forward pass raised {describe_error(error)}"
            else:
                try:
                    self.setup.loss_fn(output, targets)
                except Exception as error:
                    self._blockers["loss"] = f"loss_fn raised {describe_error(error)}"
        return self._blockers[requirement]
