"""TG307 padding-in-loss: a token loss whose targets hold the model's padding id at the padded
positions of its inputs while `ignore_index` does not mask that id: the padding is trained on."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import torch
from torch import nn

from trainguard.runtime.callsite import Location
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ForwardCall, LossCall

if TYPE_CHECKING:
    from trainguard.runtime.context import DetectorContext
    from trainguard.runtime.probes.modules import RootModule

# A padding id must sit in at least this many target positions of one row: one target equal to
# it can be a real token (GPT-2 style end-of-text used as padding, counted once per row).
MIN_PADDED_TARGETS = 2
# Run-detected padding (no Embedding or attention mask names it): the value fills the end (or the
# start) of at least MIN_PADDED_ROWS rows over at least MIN_PADDING_RUN positions, while another
# row holds fewer of it there: sequences of different lengths. A token repeated at the end of one
# row ("a a b b" text) is not padding.
MIN_PADDING_RUN = 2
MIN_PADDED_ROWS = 2
_MAX_CANDIDATES = 4


@dataclass(frozen=True)
class _TokenLoss:
    """What a check needs of a loss call (no graph: the logits are not kept)."""

    name: str
    target: torch.Tensor
    classes: int
    ignore_index: int
    weight: torch.Tensor | None
    location: Location


class PaddingInLoss(Detector):
    """TG307: decides at a cross_entropy / nll_loss call, in sampled steps (at most one check per
    step, a few host reads), from its targets and the integer inputs of the model call they belong
    to: the latest forward call, or for a loss computed inside a model's forward, that call, when
    it returns."""

    code = "TG307"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._reported = False
        self._checked_step = -1  # one check per step: an evaluation may compute thousands of losses
        self._inside: _TokenLoss | None = None
        self._embeddings: weakref.WeakKeyDictionary[RootModule, list[tuple[str, nn.Embedding]]] = weakref.WeakKeyDictionary()

    def on_loss(self, event: LossCall) -> None:
        if self._reported or not self.session.detailed or self._checked_step == self.session.step:
            return
        if event.ignore_index is None or event.reduction == "none":
            return  # reduction="none": the user masks the per-token losses by hand
        target = event.target
        if not isinstance(target, torch.Tensor) or target.is_floating_point() or target.numel() < 2 or event.input.dim() < 2:
            return
        loss = _TokenLoss(event.name, target, event.input.shape[1], event.ignore_index, event.weight, event.location)
        if event.in_forward:
            self._inside = loss  # its model's forward call is reported when the model returns
            return
        for forward in reversed(self.session.window.forwards):
            ids = _token_ids(forward, target)
            if ids is not None:
                self._check(loss, forward, ids)
                return

    def on_forward(self, event: ForwardCall) -> None:
        loss, self._inside = self._inside, None
        if loss is not None and not self._reported:
            ids = _token_ids(event, loss.target)
            if ids is not None:
                self._check(loss, event, ids)

    def _check(self, loss: _TokenLoss, forward: ForwardCall, ids: torch.Tensor) -> None:
        self._checked_step = self.session.step
        for padding, padded, source in self._padding(forward, ids, loss.classes):
            if padding == loss.ignore_index or not 0 <= padding < loss.classes:
                continue
            if loss.weight is not None and float(loss.weight[padding]) == 0.0:
                continue  # a zero class weight masks the padding too
            counted = _padded_targets(padded, loss.target.reshape(ids.shape), padding)
            if counted:
                self._reported = True
                self.report(
                    f"{loss.name} counted {counted} targets equal to the padding id {padding} ({source}) at "
                    f"padded positions; ignore_index is {loss.ignore_index}, so the model is trained to "
                    f"predict padding and the loss is averaged over it",
                    loss.location,
                    evidence={"padding_id": padding, "padded_targets": counted, "ignore_index": loss.ignore_index},
                )
                return

    def _padding(self, forward: ForwardCall, ids: torch.Tensor, classes: int) -> Iterator[tuple[int, torch.Tensor, str]]:
        """The model's padding ids with the positions of `ids` they pad: an Embedding's
        `padding_idx` over as many tokens as the loss has classes (the targets are tokens of the
        same vocabulary) wherever it stands, else the one id at the positions an `attention_mask`
        leaves out, else values that fill the rows' ends to one length."""
        root = forward.root
        embeddings = self._embeddings.get(root)
        if embeddings is None:
            module = root.module
            embeddings = self._embeddings[root] = [] if module is None else [
                (name, layer) for name, layer in module.named_modules()
                if isinstance(layer, nn.Embedding) and layer.padding_idx is not None
            ]
        named = [(name, layer) for name, layer in embeddings if layer.num_embeddings == classes]
        if named:
            for name, layer in named[:_MAX_CANDIDATES]:
                padding = int(layer.padding_idx)  # type: ignore[arg-type]
                yield padding, ids == padding, f"the padding_idx of Embedding {name!r}"
            return
        mask_ref = forward.integer_inputs.get("attention_mask")
        mask = None if mask_ref is None else mask_ref()
        if mask is not None and mask.numel() == ids.numel() and mask.device == ids.device:
            padded = mask.reshape(ids.shape) == 0
            values = ids[padded].unique()
            if len(values) == 1:
                yield int(values.item()), padded, "the id at the positions its attention_mask leaves out"
            return
        for value, padded in _run_padding(ids):
            yield value, padded, "the value that pads the input rows to one length"


def _token_ids(forward: ForwardCall, target: torch.Tensor) -> torch.Tensor | None:
    """The token ids a forward call was given (`input_ids`, else a positional integer input) when
    they are shaped like the targets ([batch, time], or flattened), as rows; else None."""
    refs = forward.integer_inputs
    for key in ("input_ids", 0, 1, 2, 3):
        ref = refs.get(key)
        ids = None if ref is None else ref()
        if ids is not None and ids.dim() in (1, 2) and ids.numel() == target.numel() and ids.device == target.device:
            return ids if ids.dim() == 2 else ids.unsqueeze(0)
    return None


def _run_padding(ids: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """Values that fill the end (or the start) of >= MIN_PADDED_ROWS rows over >= MIN_PADDING_RUN
    positions while another row holds fewer of them there (rows padded to one length), with those
    runs' positions."""
    found: list[tuple[int, torch.Tensor]] = []
    with torch.no_grad():
        for edge, flipped in ((ids[:, -1], True), (ids[:, 0], False)):
            for value in edge.unique()[:_MAX_CANDIDATES].tolist():
                equal = ids == value
                run = (equal.flip(1) if flipped else equal).long().cumprod(1)
                lengths = run.sum(1)
                padded_rows, shortest, longest = torch.stack([(lengths >= MIN_PADDING_RUN).sum(), lengths.min(), lengths.max()]).tolist()
                if padded_rows >= MIN_PADDED_ROWS and shortest < longest and value not in [v for v, _ in found]:
                    found.append((int(value), (run.flip(1) if flipped else run).bool()))
    return found


def _padded_targets(padded: torch.Tensor, targets: torch.Tensor, padding: int) -> int:
    """How many targets equal `padding` when they all stand at `padded` positions or just before
    them (read as aligned targets, or as next-token targets shifted by one) and some row holds at
    least MIN_PADDED_TARGETS of them; 0 otherwise (the id is then also a real token).

    The position just before the padding is allowed because an end-of-text token used as the
    padding id (GPT-2's usual setup) ends every row once as a real target."""
    with torch.no_grad():
        # Next-token targets: target t is input t + 1; past the end, padding continues the row's last position.
        padded_next = torch.cat([padded[:, 1:], padded[:, -1:]], dim=1)
        hits = targets == padding
        outside = torch.stack([(hits & ~_with_the_position_before(mask)).sum() for mask in (padded, padded_next)]).min()
        numbers = torch.stack([hits.sum(), hits.sum(1).max(), outside, padded.any().long()]).tolist()
    total, most_in_a_row, outside_padding, any_padded = numbers
    if not any_padded or outside_padding or most_in_a_row < MIN_PADDED_TARGETS:
        return 0
    return int(total)


def _with_the_position_before(padded: torch.Tensor) -> torch.Tensor:
    """`padded` and, in each row, the position just before each padded run."""
    following = torch.cat([padded[:, 1:], torch.zeros_like(padded[:, :1])], dim=1)
    return padded | following
