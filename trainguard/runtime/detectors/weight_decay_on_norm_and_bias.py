"""TG116 weight-decay-on-norm-and-bias: a param group with weight decay holding normalization weights and biases."""

from __future__ import annotations

import inspect

from torch import nn

from trainguard.findings import Severity
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart

# Layers whose weight is a per-channel gain: decaying it pulls the gain towards zero.
NORMALIZATION = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))


class WeightDecayOnNormAndBias(Detector):
    """TG116, at each optimizer's first step (once: param groups rarely change): the groups with a
    chosen weight decay > 0 that hold normalization weights of the models seen so far (their
    biases are counted too). Biases alone are not reported: a few parameters whose decay changes
    little, decayed by almost every script. Nor is a decay at the optimizer's own default
    (AdamW's 0.01): nobody chose it. Info, or a warning from the `norm_decay_warning` threshold on."""

    code = "TG116"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._judged: set[int] = set()

    def on_step_start(self, event: StepStart) -> None:
        key = id(event.state)
        if key in self._judged or not self.session.roots:
            return  # judged, or no model has run yet: its parameters have no names to tell
        self._judged.add(key)
        kinds = self._norm_and_bias_names()
        if not any(kind == "norm" for kind, _ in kinds.values()):
            return
        default = _default_decay(type(event.optimizer))
        for index, group in enumerate(event.optimizer.param_groups):
            decay = group.get("weight_decay", 0)
            if not isinstance(decay, (int, float)) or decay <= 0 or decay == default:
                continue
            norms = [kinds[id(p)][1] for p in group["params"] if kinds.get(id(p), ("", ""))[0] == "norm"]
            biases = [kinds[id(p)][1] for p in group["params"] if kinds.get(id(p), ("", ""))[0] == "bias"]
            if not norms:
                continue
            large = decay >= self.session.config.thresholds.norm_decay_warning
            names = norms + biases
            self.report(
                f"param group {index} of {type(event.optimizer).__name__} applies weight_decay={decay:g} to "
                f"{len(norms)} normalization weight(s) and {len(biases)} bias(es): "
                f"{', '.join(names[:4])}{' ...' if len(names) > 4 else ''}",
                event.state.made_at if event.state.made_at.path is not None else event.location,
                evidence={"group": index, "weight_decay": decay, "normalization_weights": len(norms),
                          "biases": len(biases), "parameters": names[:20]},
                severity=None if large else Severity.INFO,
                step=event.index,
            )

    def _norm_and_bias_names(self) -> dict[int, tuple[str, str]]:
        """id(parameter) -> ("norm" or "bias", its name), over the models seen so far."""
        kinds: dict[int, tuple[str, str]] = {}
        for root in list(self.session.roots.values()):
            model = root.module
            if model is None:
                continue
            for module_name, module in model.named_modules():
                prefix = f"{root.name}.{module_name}." if module_name else f"{root.name}."
                for name, param in module.named_parameters(recurse=False):
                    if name == "bias":
                        kinds.setdefault(id(param), ("bias", prefix + name))
                    elif name == "weight" and isinstance(module, NORMALIZATION):
                        kinds.setdefault(id(param), ("norm", prefix + name))
        return kinds


def _default_decay(optimizer_class: type) -> object:
    """The optimizer class's own default weight decay (AdamW: 0.01), None when it has none."""
    try:
        # The class's own __init__, read as a function (mypy objects to __init__ on a type in general).
        parameter = inspect.signature(optimizer_class.__init__).parameters.get("weight_decay")  # type: ignore[misc]
    except (TypeError, ValueError):
        return None
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default
