"""TG703 state-dict-not-loaded: a `load_state_dict(strict=False)` that loaded few or none of its keys.

Judged from the keys the call itself returns (no tensor is read). The share loaded is taken of
the smaller side, the model's keys or the checkpoint's: a backbone checkpoint loaded into a model
with a new head (a few model keys missing), an adapter checkpoint loaded into a large model (most
model keys missing, all checkpoint keys loaded) or a full checkpoint loaded into a backbone (the
head keys unexpected) all load nearly everything they can; a prefix such as `module.` that
matches nothing loads nothing.
"""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StateDictLoad


class StateDictNotLoaded(Detector):
    """TG703, at the load_state_dict call."""

    code = "TG703"

    def on_state_dict_load(self, event: StateDictLoad) -> None:
        model_keys, checkpoint_keys = event.loaded + event.missing, event.loaded + event.unexpected
        could_load = min(model_keys, checkpoint_keys)
        if could_load == 0:
            return  # an empty state dict, or a module without state: nothing to miss
        share = event.loaded / could_load
        if share >= self.session.config.thresholds.state_dict_min_loaded:
            return
        self.report(
            f"{event.module}.load_state_dict(strict=False) loaded {event.loaded} of the model's {model_keys} keys "
            f"({event.missing} missing, {event.unexpected} unexpected in the checkpoint): the rest keep their "
            f"initial values and nothing says so",
            event.location,
            evidence={
                "loaded": event.loaded,
                "missing": event.missing,
                "unexpected": event.unexpected,
                "missing_examples": event.examples["missing"],
                "unexpected_examples": event.examples["unexpected"],
            },
        )
