"""A guard session's configuration: which rules, how findings are reported, the thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from trainguard.catalogue import RuleSelection
from trainguard.runtime.thresholds import Thresholds


@dataclass(frozen=True)
class GuardConfig:
    selection: RuleSelection
    strict: bool = False
    echo: bool = True
    rank: int | None = None
    # `trainguard run` passes a JSON-lines file (reporters.FindingsStream).
    stream_path: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    metrics_path: str | None = None
    tensorboard_dir: str | None = None

    @classmethod
    def build(
        cls,
        *,
        select: str | Iterable[str] | None = None,
        ignore: str | Iterable[str] | None = None,
        strict: bool = False,
        echo: bool = True,
        rank: int | None = None,
        stream_path: str | None = None,
        thresholds: Mapping[str, Any] | None = None,
        metrics_path: str | None = None,
        tensorboard_dir: str | None = None,
    ) -> GuardConfig:
        return cls(
            RuleSelection.build(select, ignore), strict, echo, rank, stream_path,
            Thresholds.build(thresholds), metrics_path, tensorboard_dir,
        )
