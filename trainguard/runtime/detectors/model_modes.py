"""TG201 eval-mode-missing, TG202 train-mode-missing, TG203 no-grad-missing.

All three judge root forward calls: by their mode (train/eval), whether grad was enabled, and
whether a backward ever reached the graph they built. A graph is judged unused at the next step of
an optimizer that owns the model's parameters, or at the end of the run.
"""

from __future__ import annotations

from typing import cast

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from trainguard.findings import Severity
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ForwardCall, LossCall, StepStart
from trainguard.runtime.probes.modules import storage_ids

_MAX_PENDING = 512


class _ForwardJudge(Detector):
    """Collects graph-building forwards and judges each once it must have been backpropagated."""

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._pending: list[tuple[ForwardCall, list[str]]] = []

    def on_forward(self, event: ForwardCall) -> None:
        if event.reach is not None and len(self._pending) < _MAX_PENDING:
            self._pending.append((event, self.layers_of(event)))

    def layers_of(self, event: ForwardCall) -> list[str]:
        """What to remember about the model's layers at the time of the forward."""
        return []

    def on_step_start(self, event: StepStart) -> None:
        owned = event.state.param_ids
        keep = []
        for call, layers in self._pending:
            if call.reach.reached:  # type: ignore[union-attr]
                continue
            if call.root.param_ids.isdisjoint(owned):
                keep.append((call, layers))
            else:
                self.unused(call, layers)
        self._pending = keep

    def on_finish(self, event: None) -> None:
        for call, layers in self._pending:
            if not call.reach.reached:  # type: ignore[union-attr]
                self.unused(call, layers)
        self._pending = []

    def unused(self, call: ForwardCall, layers: list[str]) -> None:
        """A forward that built a graph no backward reached."""


class EvalModeMissing(_ForwardJudge):
    """TG201. An error when the evaluation is scored, an info for a generator's unscored sample.

    The guard cannot follow a no_grad output into argmax or a comparison, so every train-mode
    evaluation of a predictor counts as scored. A generator (a model whose training outputs another
    model takes as input, as in a GAN) sampled in train mode is the original DCGAN recipe: that
    sample is an error only when a loss function receives it (matched by storage), else an info.
    """

    code = "TG201"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._recalibrating: set[int] = set()  # ids of roots re-estimating BatchNorm statistics, until the next step
        self._step_outputs: dict[int, int] = {}  # storage address -> id(root), training forwards since the last step
        self._generators: set[int] = set()  # ids of roots whose training outputs another root received
        self._samples: dict[int, int] = {}  # storage address -> id(call), a generator's train-mode samples pending
        self._deferred: list[tuple[ForwardCall, list[str]]] = []  # a generator's no_grad samples, judged at the next step
        self._scored: set[int] = set()  # ids of those calls whose output a loss function received

    def on_step_start(self, event: StepStart) -> None:
        self._recalibrating.clear()
        self._step_outputs.clear()
        super().on_step_start(event)
        self._judge_deferred()

    def on_finish(self, event: None) -> None:
        super().on_finish(event)
        self._judge_deferred()

    def on_loss(self, event: LossCall) -> None:
        if self._samples:
            for address in storage_ids(event.input):
                if address in self._samples:
                    self._scored.add(self._samples[address])

    def recalibrating(self, event: ForwardCall) -> bool:
        """BatchNorm statistics being re-estimated, as torch.optim.swa_utils.update_bn and
        hand-written recalibration loops do: train mode on purpose, with the running statistics
        averaged cumulatively (momentum=None) or just reset (a layer that has tracked fewer
        batches than the run took optimizer steps). Their outputs are thrown away; the
        statistics are the point. Reads one batch counter (a device read on a GPU), and only for
        train-mode forwards under no_grad."""
        if id(event.root) in self._recalibrating:
            return True
        batchnorms = [m for _, m in event.root.mode_dependent if isinstance(m, _BatchNorm) and m.training and m.track_running_stats]
        if batchnorms and (any(m.momentum is None for m in batchnorms) or int(cast(torch.Tensor, batchnorms[0].num_batches_tracked)) < self.session.step):
            self._recalibrating.add(id(event.root))
            return True
        return False

    def _note_consumers(self, event: ForwardCall) -> None:
        """A training forward: remember its outputs, and mark the roots whose outputs it takes as input."""
        for ref in event.inputs:
            tensor = ref()
            if tensor is None:
                continue
            for address in storage_ids(tensor):
                owner = self._step_outputs.get(address)
                if owner is not None and owner != id(event.root):
                    self._generators.add(owner)
        if event.grad_enabled:
            for address in event.output_storages:
                self._step_outputs[address] = id(event.root)

    def _watch(self, call: ForwardCall) -> None:
        if len(self._samples) < _MAX_PENDING:  # a long sampling loop between two steps: later ones stay unscored (info)
            for address in call.output_storages:
                self._samples[address] = id(call)

    def on_forward(self, event: ForwardCall) -> None:
        if event.training:
            self._note_consumers(event)
        if event.training and not event.grad_enabled:
            layers = event.root.active_mode_dependent()
            if layers and not self.recalibrating(event):
                if id(event.root) in self._generators:
                    if len(self._deferred) < _MAX_PENDING:
                        self._watch(event)
                        self._deferred.append((event, layers))
                else:
                    self._report(event, layers)
            return
        super().on_forward(event)
        if event.training and event.reach is not None and id(event.root) in self._generators:
            self._watch(event)

    def layers_of(self, event: ForwardCall) -> list[str]:
        return event.root.active_mode_dependent() if event.training else []

    def unused(self, call: ForwardCall, layers: list[str]) -> None:
        if layers:
            self._report(call, layers)

    def _judge_deferred(self) -> None:
        for call, layers in self._deferred:
            self._report(call, layers)
        self._deferred = []
        alive = {id(call) for call, _ in self._pending}  # graph-building samples still waiting for their verdict
        self._samples = {address: call for address, call in self._samples.items() if call in alive}
        self._scored &= alive

    def _report(self, call: ForwardCall, layers: list[str]) -> None:
        if id(call.root) in self._generators and id(call) not in self._scored:
            self.report(
                f"{call.root.name} produced a sample in train mode: {len(layers)} Dropout/BatchNorm layer(s) "
                f"({', '.join(layers[:4])}) use the batch's statistics and update the running ones; its "
                f"output went to no loss function (GAN generators are often sampled in train mode on purpose)",
                call.location,
                evidence={"layers_in_train_mode": layers[:10], "grad_enabled": call.grad_enabled, "generator": True},
                step=call.step,
                severity=Severity.INFO,
            )
            return
        self.report(
            f"{call.root.name} ran an evaluation forward in train mode: {len(layers)} Dropout/BatchNorm "
            f"layer(s) still behave as in training ({', '.join(layers[:4])}), so predictions are "
            f"noisy and BatchNorm running statistics are updated by evaluation data",
            call.location,
            evidence={"layers_in_train_mode": layers[:10], "grad_enabled": call.grad_enabled},
            step=call.step,
        )


class NoGradMissing(_ForwardJudge):
    code = "TG203"

    def unused(self, call: ForwardCall, layers: list[str]) -> None:
        self.report(
            f"{call.root.name} ran a forward with gradients enabled whose graph no backward() "
            f"reached: the graph and its saved activations were built for nothing (memory and time)",
            call.location,
            evidence={"model": call.root.name, "training_mode": call.training},
            step=call.step,
        )


class TrainModeMissing(Detector):
    code = "TG202"

    def on_step_start(self, event: StepStart) -> None:
        for call in self.session.window.forwards:
            trained = call.reach is not None and call.reach.reached
            if trained and not call.training and call.root.mode_dependent:
                layers = call.root.mode_dependent_names()
                self.report(
                    f"{call.root.name} was trained in eval mode: {len(layers)} Dropout/BatchNorm "
                    f"layer(s) ({', '.join(layers[:4])}) run as in inference, so dropout is off and "
                    f"BatchNorm uses frozen running statistics",
                    call.location,
                    evidence={"layers": layers[:10]},
                    step=event.index,
                )
