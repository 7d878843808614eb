"""Which DataLoader batches were trained on and which were only evaluated (TG504, TG505).

A batch's role is settled when the next batch is drawn, an optimizer step starts or the run ends:
a batch followed by a backward pass or an optimizer step was trained on; one followed only by
forward passes without grad or in eval mode was evaluated; anything else (a batch drawn and
never used, a forward in train mode with grad but no backward) stays unknown and is not judged.
A teacher's or EMA model's no-grad forward on a training batch does not make it an evaluation
batch: the student's backward on it follows before the next batch.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from trainguard.runtime.events import ForwardCall, LoaderBatch


class Role(Enum):
    TRAIN = "train"
    EVAL = "eval"


class LoaderRoles:
    """Fed a detector's events, calls `settled(batch, role)` once per batch whose role is known.

    It keeps the last batch until its role is settled (the user's loop variable keeps it as long).
    """

    def __init__(self, settled: Callable[[LoaderBatch, Role], None]) -> None:
        self._settled = settled
        self._pending: LoaderBatch | None = None
        self._trained = False
        self._evaluated = False

    def batch_drawn(self, event: LoaderBatch) -> None:
        self.settle()
        self._pending = event

    def forward(self, event: ForwardCall) -> None:
        if self._pending is not None and not (event.training and event.grad_enabled):
            self._evaluated = True

    def backward(self) -> None:
        if self._pending is not None:
            self._trained = True

    def step_started(self) -> None:
        if self._pending is not None:
            self._trained = True
        self.settle()

    def settle(self) -> None:
        """Settle the pending batch's role now (its window ended)."""
        batch, trained, evaluated = self._pending, self._trained, self._evaluated
        self._pending, self._trained, self._evaluated = None, False, False
        if batch is None:
            return
        if trained:
            self._settled(batch, Role.TRAIN)
        elif evaluated:
            self._settled(batch, Role.EVAL)
