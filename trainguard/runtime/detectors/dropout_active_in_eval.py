"""TG206 dropout-active-in-eval: dropout that drops units inside a module in eval mode.

The dropout watch (runtime/probes/dropout_in_eval.py) sees the functional dropout and attention
calls of a model's first eval-mode calls in detailed windows; `nn.Dropout` passes its own mode
and is silent, including one put back in train mode on purpose (MC-dropout).
"""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import DropoutInEval


class DropoutActiveInEval(Detector):
    """TG206, at the dropout / attention call."""

    code = "TG206"

    def on_dropout_in_eval(self, event: DropoutInEval) -> None:
        argument = "dropout_p" if event.function == "scaled_dot_product_attention" else "p"
        self.report(
            f"{event.function}({argument}={event.p:g}) dropped units inside {event.module}, which is in eval mode: "
            f"the mode is not passed on (training=self.training), so evaluation and predictions stay random",
            event.location,
            evidence={"module": event.module, "function": event.function, "p": event.p},
        )
