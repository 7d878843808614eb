"""Dropout watch: which dropout ops run with dropout on inside a module in eval mode.

`F.dropout` (and its 1d/2d/3d/alpha variants) takes its mode as an argument, and
`F.scaled_dot_product_attention` takes a `dropout_p`: neither reads the calling module's mode,
and no module hook sees them. Wrapping the functions in `torch.nn.functional` would change what
`torch.jit.script` compiles for every watched model, so nothing is patched: a
`TorchFunctionMode` is entered around a few eval-mode calls of each model (in detailed windows,
never in compiled calls) and sees each call with its arguments. The module a call runs in is the
innermost one on the module probe's stack; an `nn.Dropout` put in train mode on purpose
(MC-dropout) runs in a train-mode module and is not reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch.nn.functional as F
from torch.compiler import is_compiling
from torch.overrides import TorchFunctionMode

from trainguard.runtime.callsite import user_location
from trainguard.runtime.events import DropoutInEval

if TYPE_CHECKING:
    from torch import nn

    from trainguard.runtime.context import ObserverContext

DROPOUT_FUNCTIONS = {
    F.dropout: "dropout", F.dropout1d: "dropout1d", F.dropout2d: "dropout2d", F.dropout3d: "dropout3d",
    F.alpha_dropout: "alpha_dropout", F.feature_alpha_dropout: "feature_alpha_dropout",
}
ATTENTION = F.scaled_dot_product_attention
_DROPOUT_P_POSITION = 4  # scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, ...)


class DropoutWatch(TorchFunctionMode):
    """Reports dropout ops that drop units inside an eval-mode module; calls every function as it is."""

    def __init__(self, session: ObserverContext, innermost: Callable[[], nn.Module | None]) -> None:
        super().__init__()
        self.session = session
        self._innermost = innermost

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if (func in DROPOUT_FUNCTIONS or func is ATTENTION) and not is_compiling():
            try:
                self._judge(func, args, kwargs)
            except Exception as error:
                self.session.internal_error("dropout watch", error)
        return func(*args, **kwargs)

    def _judge(self, func: Any, args: tuple, kwargs: dict) -> None:
        if func is ATTENTION:
            name = "scaled_dot_product_attention"
            p = kwargs.get("dropout_p", args[_DROPOUT_P_POSITION] if len(args) > _DROPOUT_P_POSITION else 0.0)
            dropping = isinstance(p, (int, float)) and p > 0
        else:
            name = DROPOUT_FUNCTIONS[func]
            p = kwargs.get("p", args[1] if len(args) > 1 else 0.5)
            training = kwargs.get("training", args[2] if len(args) > 2 else True)
            dropping = training is True and isinstance(p, (int, float)) and p > 0
        if not dropping:
            return
        module = self._innermost()
        if module is not None and not module.training:
            self.session.emit("dropout_in_eval", DropoutInEval(type(module).__name__, name, float(p), user_location()))
