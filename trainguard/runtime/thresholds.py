"""The numeric-health thresholds, with their documented defaults (all configurable)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class Thresholds:
    # TG108: alert when the total gradient norm exceeds this (the 200-epoch post-mortem's standing alarm, docs/rules.md) ...
    exploding_norm: float = 10.0
    # ... or is this many times its running median (over the last `spike_history` measurements,
    # once at least 10 exist).
    spike_factor: float = 10.0
    spike_history: int = 50
    # TG109: a weight whose gradient RMS (norm / sqrt(numel)) stays below this ...
    vanishing_rms: float = 1e-7
    # ... for this many consecutive measurements.
    vanishing_patience: int = 5
    # TG402: after this many optimizer steps, the mean loss of the last 20 % of the steps must
    # be at least `min_improvement` (relative) below the mean of the first 10 %.
    loss_window: int = 100
    min_improvement: float = 0.01
    # TG401: this many consecutive evaluations without a new best validation loss.
    val_patience: int = 5
    # TG801: compare parameters across ranks after steps 0 and 9, then every this many steps;
    # rank 0 waits at most `desync_timeout` seconds for the other ranks' checksums.
    desync_every: int = 50
    desync_timeout: float = 5.0

    @classmethod
    def build(cls, values: Mapping[str, Any] | None = None) -> Thresholds:
        """Defaults overridden by `values` ({"exploding_norm": 5}); unknown names are an error."""
        if not values:
            return cls()
        known = {field.name: field.type for field in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown threshold {unknown[0]!r}; known: {', '.join(sorted(known))}")
        converted = {}
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
