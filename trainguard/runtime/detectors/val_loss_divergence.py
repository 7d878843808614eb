"""TG401 val-loss-divergence: validation loss no longer reaching its best, evaluation after
evaluation (the seed's alarm: five in a row past the rolling minimum)."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import Evaluated


class ValLossDivergence(Detector):
    code = "TG401"

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(session)
        self._patience = session.config.thresholds.val_patience
        self._best: float | None = None
        self._since_best: list[float] = []

    def on_evaluated(self, event: Evaluated) -> None:
        if self._best is None or event.loss < self._best:
            self._best, self._since_best = event.loss, []
            return
        self._since_best.append(event.loss)
        if len(self._since_best) == self._patience:
            self.report(
                f"the validation loss has been above its best ({self._best:.4g}) for {self._patience} "
                f"evaluations in a row (now {event.loss:.4g}): the model is overfitting or diverging",
                event.location,
                evidence={"best": round(self._best, 6), "since_best": [round(v, 6) for v in self._since_best], "evaluation": event.index},
                step=event.step,
            )
