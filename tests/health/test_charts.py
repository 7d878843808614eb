"""The chart drawing rules (trainguard/reports/charts.py): axis ranges, ticks and their labels,
marker label layout, escaping. How a browser lays them out and runs the hover and zoom script is
checked in test_metrics_and_report.py (headless Chromium)."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from trainguard.reports.charts import LABEL_ROWS, RIGHT, WIDTH, Chart, Marker, Series, label, layout_labels, render, ticks


def _data(svg: str) -> dict:
    (found,) = re.findall(r'data-chart="([^"]*)"', svg)
    return json.loads(unescape(found))


def _y_labels(svg: str) -> list[str]:
    group = re.search(r'<g class="y-ticks">(.*?)</g>', svg).group(1)  # type: ignore[union-attr]
    return re.findall(r">([^<]+)</text>", group)


@pytest.mark.parametrize("value", [1000.0, 0.1, 3e-4, 0.0, 2.5e8])
def test_a_constant_sits_mid_axis_with_ticks_that_differ(value: float) -> None:
    svg = render(Chart("learning rate", [Series("lr", [(step, value) for step in range(20)], "#117a65")]))
    low, high = _data(svg)["y"]
    assert low < value < high and (low >= 0 or value == 0)  # never an axis from -0.5 to 0.5 around a positive lr
    labels = _y_labels(svg)
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels


def test_a_constant_on_a_log_axis_spans_a_decade_around_it() -> None:
    low, high = _data(render(Chart("ratio", [Series("r", [(0, 0.01), (1, 0.01)], "#000")], log_y=True)))["y"]
    assert (low, high) == pytest.approx((-2.5, -1.5))


@pytest.mark.parametrize(("low", "high", "log", "expected"), [
    (0.0, 8.0, False, ["0", "2", "4", "6", "8"]),
    (995.0, 1005.0, False, ["996", "998", "1000", "1002", "1004"]),
    (-0.05, 0.05, False, ["-0.04", "-0.02", "0", "0.02", "0.04"]),
    (0.0, 16.5, True, ["1", "10000", "1e+8", "1e+12", "1e+16"]),
    (-1.0, 0.2, True, ["0.1", "0.2", "0.5", "1"]),  # one or two decades: 1, 2, 5
    (2.0, 2.4, True, ["100", "150", "200", "250"]),  # within a decade: plain values
])
def test_ticks_and_labels(low: float, high: float, log: bool, expected: list[str]) -> None:
    positions, step = ticks(low, high, log)
    assert [label(10 ** p if log else p, step) for p in positions] == expected


def test_marker_labels_stack_in_rows_and_stay_inside() -> None:
    markers = [(100.0 + 2 * i, f"TG10{i}") for i in range(LABEL_ROWS + 1)] + [(WIDTH - RIGHT - 1.0, "TG306")]
    placed = layout_labels(markers)
    assert placed[LABEL_ROWS] is None  # no room left near x=100: left to the line's tooltip
    boxes = [(start, row, start + 6 * len(text)) for (x, text), place in zip(markers, placed) if place for start, row in [place]]
    assert sorted(row for _, row, _ in boxes[:LABEL_ROWS]) == list(range(LABEL_ROWS))
    assert all(0 <= start and end <= WIDTH - RIGHT for start, _, end in boxes)
    assert boxes[-1][2] < WIDTH - RIGHT - 1.0  # at the edge: drawn left of its line


def test_names_and_labels_are_escaped_in_text_and_data() -> None:
    svg = render(Chart("<b>", [Series("<script>alert(1)</script>", [(0, 1.0), (1, 2.0)], "#000")], [Marker(1, '"><img>')]))
    assert "<script>" not in svg and "<img>" not in svg and "<b>" not in svg
    data = _data(svg)
    assert data["series"][0]["name"] == "<script>alert(1)</script>" and data["markers"][0]["label"] == '"><img>'


def test_non_finite_values_stay_in_the_data_for_the_tooltip() -> None:
    data = _data(render(Chart("loss", [Series("train", [(0, 2.0), (1, float("nan")), (2, float("inf"))], "#000")])))
    assert data["series"][0]["points"] == [[0, 2.0], [1, "nan"], [2, "inf"]]
