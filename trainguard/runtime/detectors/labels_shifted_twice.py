"""TG310 labels-shifted-twice: labels already shifted by one passed to a causal language model
that shifts them again (it then learns to predict the token two positions ahead)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ForwardCall

if TYPE_CHECKING:
    from trainguard.runtime.context import DetectorContext

# Hugging Face's causal-LM loss leaves this label value out (`ignore_index=-100`).
HF_IGNORE_INDEX = -100
# Positions where reading the labels shifted and unshifted would disagree: below this many, a
# run of repeated tokens could match both readings by chance.
MIN_EVIDENCE = 8
_MAX_UNWRAP = 3


def shifts_labels(module: nn.Module | None) -> str | None:
    """The class name of a Hugging Face causal language model that `module` is (or wraps, through
    DDP's `.module` or `torch.compile`'s `._orig_mod`): its loss shifts `labels` by one itself.
    None for any other model, and for one whose loss function the user replaced."""
    for _ in range(_MAX_UNWRAP):
        if module is None:
            return None
        classes = type(module).__mro__
        if any(cls.__name__ == "PreTrainedModel" and cls.__module__.startswith("transformers.") for cls in classes):
            break
        inner = getattr(module, "_orig_mod", None)
        inner = getattr(module, "module", None) if inner is None else inner
        module = inner if isinstance(inner, nn.Module) else None
    else:
        return None
    if module is None or "_loss_function" in vars(module):
        return None
    if getattr(getattr(module, "config", None), "is_encoder_decoder", False):
        return None  # seq2seq models take decoder labels as they are
    name = type(module).__name__
    loss_type = getattr(module, "loss_type", None)
    # `loss_type` None falls back to the causal-LM loss; only causal-LM class names are trusted then.
    if loss_type == "ForCausalLM" or (loss_type is None and name.endswith(("ForCausalLM", "LMHeadModel"))):
        return name
    return None


class LabelsShiftedTwice(Detector):
    """TG310: decides at a causal LM's forward call, in sampled steps (at most one check per step,
    one host read), from its `labels` and input ids."""

    code = "TG310"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._reported: set[int] = set()
        self._checked_step = -1  # one check per step: an evaluation may call the model thousands of times

    def on_forward(self, event: ForwardCall) -> None:
        if not self.session.detailed or "labels" not in event.integer_inputs or self._checked_step == self.session.step:
            return
        ids_ref = event.integer_inputs.get("input_ids") or event.integer_inputs.get(0)
        ids, labels = (None if ids_ref is None else ids_ref()), event.integer_inputs["labels"]()
        if ids is None or labels is None or ids.shape != labels.shape or ids.dim() == 0 or ids.shape[-1] < 2:
            return
        if ids.device != labels.device or id(event.root) in self._reported:
            return
        model = shifts_labels(event.root.module)
        if model is None:
            return
        self._checked_step = self.session.step
        shifted, evidence = _shifted_by_one(ids, labels)
        if not shifted or evidence < MIN_EVIDENCE:
            return
        self._reported.add(id(event.root))
        self.report(
            f"labels passed to {model} equal its input_ids shifted by one position, and {model} shifts "
            f"labels itself: each position is trained to predict the token two ahead",
            event.location,
            evidence={"model": model, "tokens_compared": evidence, "labels_shape": list(labels.shape)},
            step=event.step,
        )


def _shifted_by_one(ids: torch.Tensor, labels: torch.Tensor) -> tuple[bool, int]:
    """Whether every counted label (not -100, last position left out) is the next input id, and
    at how many of them the unshifted reading (label == input id) would have said otherwise."""
    with torch.no_grad():
        current, following = ids[..., :-1], ids[..., 1:]
        leading = labels[..., :-1]
        counted = leading != HF_IGNORE_INDEX
        matches_next = ((leading == following) | ~counted).all()
        evidence = (counted & (leading != current)).sum()
        shifted, informative = torch.stack([matches_next.long(), evidence]).tolist()  # one host read
    return bool(shifted), int(informative)
