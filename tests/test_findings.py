"""The order of severities: by rank, whatever the order of their string values."""

from __future__ import annotations

import itertools

from trainguard.findings import Severity


def test_severities_are_ordered_by_rank_and_every_comparison_agrees() -> None:
    ranked = [Severity.INFO, Severity.WARNING, Severity.ERROR]
    assert sorted(reversed(ranked)) == ranked
    assert max(ranked) is Severity.ERROR and min(ranked) is Severity.INFO
    for low, high in itertools.combinations(ranked, 2):
        assert low < high and low <= high and high > low and high >= low
        assert not (low > high or low >= high or high < low or high <= low)
