"""TG401 val-loss-divergence: a validation loss rising past its best, evaluation after evaluation
(the 200-epoch post-mortem's alarm: five in a row past the rolling minimum), judged with a margin and a trend so
that a flat, noisy plateau stays silent."""

from __future__ import annotations

import statistics
from itertools import combinations

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import Evaluated

_RISING_PAIRS = 0.8  # share of the window's pairs of evaluations in rising order (a trend, not noise)


def median_slope(values: list[float]) -> float:
    """Theil-Sen slope per evaluation: the median of the pairwise slopes (one outlier cannot make a trend)."""
    return statistics.median((b - a) / (j - i) for (i, a), (j, b) in combinations(enumerate(values), 2))


def rising_pairs(values: list[float]) -> float:
    """The share of pairs (earlier, later) where the later value is higher (Kendall's concordance):
    1 for a steady rise; five values of pure noise reach 0.8 about one time in nine."""
    pairs = list(combinations(values, 2))
    return sum(later > earlier for earlier, later in pairs) / len(pairs)


def describe_units(event: Evaluated) -> str:
    """What the quoted numbers are, in the script's terms."""
    if event.reduction == "sum":
        return f"per sample: the loss calls' sums over {event.samples} samples divided by {event.samples}"
    if event.reduction == "mixed":
        return f"per sample over {event.samples} samples, from loss calls with different reductions"
    return f"the mean over {event.samples} samples"


class ValLossDivergence(Detector):
    code = "TG401"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        limits = session.config.thresholds
        self._patience, self._min_delta = limits.val_patience, limits.val_min_delta
        self._best: float | None = None
        self._since_best: list[float] = []
        self._reported = False

    def on_evaluated(self, event: Evaluated) -> None:
        if self._best is None or event.loss < self._best:
            self._best, self._since_best = event.loss, []
            return
        self._since_best.append(event.loss)
        if self._reported or len(self._since_best) < self._patience:
            return
        margin = self._min_delta * abs(self._best)
        recent = self._since_best[-self._patience :]
        above = all(value > self._best + margin for value in recent)
        rise = median_slope(recent) * (len(recent) - 1)
        if not (above and rise > margin and rising_pairs(recent) >= _RISING_PAIRS):
            return
        self._reported = True
        self.report(
            f"the validation loss has risen past its best ({self._best:.4g}) for {self._patience} evaluations "
            f"in a row, each more than {self._min_delta:.0%} above it (now {event.loss:.4g}; "
            f"{describe_units(event)}): the model is overfitting or diverging",
            event.location,
            evidence={
                "best": round(self._best, 6),
                "since_best": [round(v, 6) for v in self._since_best[-20:]],
                "evaluation": event.index,
                "reduction": event.reduction,
                "samples": event.samples,
            },
            step=event.step,
        )
