"""The numeric-health thresholds, with their documented defaults (all configurable)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class Thresholds:
    # TG108 judges each optimizer's gradient norm against that run's own history (median and
    # MAD of the log norms over the last `spike_history` measurements), from the
    # `norm_warmup`-th measurement on. A spike is a norm more than `spike_factor` times the
    # median (and six robust deviations above it) that the loss confirms within the next
    # measurements (non-finite, or a jump); growth is a median over the last 10 measurements
    # `growth_factor` times its lowest earlier value while the loss rose too.
    spike_factor: float = 10.0
    spike_history: int = 50
    growth_factor: float = 10.0
    norm_warmup: int = 20
    # An absolute alert threshold on the norm, off by default (the 200-epoch post-mortem's alarm was 10): a
    # summed loss or a fresh GAN has healthy norms in the hundreds. Opt in with
    # `--threshold exploding_norm=10`.
    exploding_norm: float = math.inf
    # TG109: a weight whose gradient RMS (norm / sqrt(numel)) stays below this ...
    vanishing_rms: float = 1e-7
    # ... for this many consecutive measurements.
    vanishing_patience: int = 5
    # TG112: micro-batches whose counted tokens (targets not equal to ignore_index) differ by at
    # least this ratio (largest / smallest) within one accumulation window: below it the unequal
    # token weights change the gradient by a few percent at most.
    token_count_ratio: float = 1.1
    # TG402: after this many optimizer steps, the mean loss of the last 20 % of the steps must
    # be at least `min_improvement` (relative) below the mean of the first 10 %.
    loss_window: int = 100
    min_improvement: float = 0.01
    # TG401: this many consecutive evaluations each above the best validation loss by more than
    # `val_min_delta` (relative), over which the loss rose (its median-slope line gained more
    # than that margin too): a flat, noisy plateau above a lucky best is not a divergence.
    val_patience: int = 5
    val_min_delta: float = 0.02
    # TG116: weight decay on normalization weights and biases is reported as info (many codebases
    # decay them on purpose, e.g. SGD's 5e-4 on BatchNorm in ResNet recipes), as a warning from
    # this decay on (AdamW's 0.1 of GPT recipes, which exclude them).
    norm_decay_warning: float = 0.05
    # TG801: compare parameters across ranks after steps 0 and 9, then every this many steps;
    # rank 0 waits at most `desync_timeout` seconds for the other ranks' checksums.
    desync_every: int = 50
    desync_timeout: float = 5.0
    # TG504: an evaluation loader that shares samples with the training loader is reported when
    # the shared samples are at least this share of its samples (by index) or of the training
    # rows fingerprinted on the first steps (by content): a few duplicate rows that two
    # datasets share by chance stay below it.
    leak_share: float = 0.05
    # TG703: a load_state_dict(strict=False) is reported when the keys it loaded are under this
    # fraction of the model's keys (or of the checkpoint's, when the checkpoint is the smaller):
    # a backbone loaded into a model with a new head misses a few keys, a prefix mismatch all.
    state_dict_min_loaded: float = 0.5

    @classmethod
    def build(cls, values: Mapping[str, Any] | None = None) -> Thresholds:
        """Defaults overridden by `values` ({"exploding_norm": 5}); unknown names are an error."""
        if not values:
            return cls()
        known = {field.name: field.type for field in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown threshold {unknown[0]!r}; known: {', '.join(sorted(known))}")
        converted: dict[str, Any] = {}  # int or float, as each field is declared
        for name, value in values.items():
            try:
                number = (int if known[name] == "int" else float)(value)
            except (TypeError, ValueError):
                raise ValueError(f"threshold {name} must be {'an integer' if known[name] == 'int' else 'a number'} (got {value!r})") from None
            if not 0 < number < math.inf:  # every threshold is a positive count, ratio or size
                raise ValueError(f"threshold {name} must be a finite number above 0 (got {value!r})")
            converted[name] = number
        return replace(cls(), **converted)


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """`["exploding_norm=5", ...]` from the command line -> {"exploding_norm": "5"}."""
    result = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"--threshold takes NAME=VALUE, got {item!r}")
        result[name.strip()] = value.strip()
    return result
