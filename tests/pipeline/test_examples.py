"""The shipped examples run as their comments say: each `trainguard train` config trains to a
good accuracy without findings, and the factory also serves `trainguard doctor`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainguard.cli import main

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize("config", ["train_table.toml", "train_factory.toml"])
def test_an_example_config_trains_cleanly(config: str, tmp_path: Path) -> None:
    assert main(["train", "--config", str(EXAMPLES / config), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["findings"] == []
    assert report["pipeline"]["validation"]["val_accuracy"] >= 0.9
    assert report["pipeline"]["best"] == max(
        json.loads(line)["val_accuracy"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"eval"' in line)


def test_the_factory_example_is_also_a_doctor_target(capsys: pytest.CaptureFixture[str]) -> None:
    # scheduler and metrics are trainguard train's keys: the doctor accepts and ignores them.
    assert main(["doctor", f"{EXAMPLES / 'train_factory.py'}:build", "--only", "registration,gradient-flow"]) == 0
    assert "gradient-flow  pass" in capsys.readouterr().out
