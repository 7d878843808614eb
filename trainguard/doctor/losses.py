"""What kind of loss the set-up uses, from its loss module or function (a lambda stays "other")."""

from __future__ import annotations

from torch import nn
from torch.nn import functional

REGRESSION_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss)
_KINDS = (
    ("cross-entropy", nn.CrossEntropyLoss, functional.cross_entropy),
    ("bce-with-logits", nn.BCEWithLogitsLoss, functional.binary_cross_entropy_with_logits),
    ("nll", nn.NLLLoss, functional.nll_loss),
)


def loss_kind(loss_fn: object) -> str:
    """"cross-entropy", "bce-with-logits", "nll", "regression" or "other"."""
    if isinstance(loss_fn, REGRESSION_LOSSES) or loss_fn in (functional.mse_loss, functional.l1_loss):
        return "regression"
    return next((kind for kind, module, function in _KINDS if isinstance(loss_fn, module) or loss_fn is function), "other")
