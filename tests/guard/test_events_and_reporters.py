"""The session's two kinds of subscription: detectors to declared events, reporters to findings;
and the `TRAINGUARD_DEBUG=events` trace of who handled what."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import trainguard
from trainguard.findings import Finding
from trainguard.runtime import detectors as detectors_package
from trainguard.runtime.api import GuardStop
from trainguard.runtime.config import GuardConfig
from trainguard.runtime.detectors import Detector, load_detectors
from trainguard.runtime.events import EVENTS, PER_STEP, StepMeasured, UnknownEventError, subscribed_events
from trainguard.runtime.reporters import Reporter
from trainguard.runtime.session import GuardSession

ROOT = Path(__file__).resolve().parents[2]


def train_without_zero_grad(steps: int = 3) -> None:
    """A loop that never clears gradients: TG101 (an error) at optimizer step 1."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 3, (8,))).backward()
        optimizer.step()


class Recorder(Reporter):
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_finding(self, finding: Finding) -> None:
        self.calls.append(("finding", finding.code))

    def on_finish(self, findings: list[Finding]) -> None:
        self.calls.append(("finish", sorted(f.code for f in findings)))


# -- events ------------------------------------------------------------------------------------


def test_every_event_is_a_documented_dataclass_frozen_unless_emitted_every_step() -> None:
    for name, event_type in EVENTS.items():
        assert dataclasses.is_dataclass(event_type) and event_type.__doc__, name
        assert event_type.__dataclass_params__.frozen != (name in PER_STEP), name  # type: ignore[attr-defined]


def test_no_runtime_module_assigns_to_an_event_field() -> None:
    """The per-step events are not frozen (cost): no code may change one after it is made."""
    field_names = {field.name for event_type in EVENTS.values() for field in dataclasses.fields(event_type)}
    assigned = []
    for path in sorted((ROOT / "trainguard" / "runtime").rglob("*.py")):
        source = path.read_text("utf-8")
        if "trainguard.runtime.events import" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and part.attr in field_names and isinstance(part.value, ast.Name) and part.value.id != "self":
                        assigned.append(f"{path.name}:{node.lineno} {ast.unparse(part)}")
    assert assigned == []


def test_measured_steps_carry_no_field_filled_in_later() -> None:
    assert "update_ratio" not in {field.name for field in dataclasses.fields(StepMeasured)}


def test_every_detector_subscribes_only_to_declared_events() -> None:
    for detector in load_detectors():
        assert set(subscribed_events(detector)) <= set(EVENTS)


def test_a_handler_for_an_unknown_event_fails_when_detectors_load(monkeypatch: pytest.MonkeyPatch) -> None:
    class Misspelt(Detector):
        code = "TG101"

        def on_step_begin(self, event: object) -> None:  # the event is `step_start`
            raise AssertionError("never called")

    real = detectors_package.subclasses_in
    monkeypatch.setattr(detectors_package, "subclasses_in", lambda *args: [*real(*args), Misspelt])
    with pytest.raises(UnknownEventError, match=r"Misspelt\.on_step_begin subscribes to no event: 'step_begin'"):
        load_detectors()


def test_no_trace_without_the_debug_variable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TRAINGUARD_DEBUG", raising=False)
    session = GuardSession(GuardConfig.build(echo=False))
    assert "emit" not in vars(session)  # the plain method: nothing decided per event
    with trainguard.watch(echo=False):
        train_without_zero_grad()
    assert "trainguard[events]" not in capsys.readouterr().err


def test_debug_events_traces_each_event_and_its_handlers(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRAINGUARD_DEBUG", "events")
    with trainguard.watch(echo=False, select="TG101"):
        train_without_zero_grad()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("trainguard[events]: ")]
    assert "trainguard[events]: step_start (StepStart) -> StaleGradients.on_step_start" in lines
    assert "trainguard[events]: backward (BackwardCall) -> no handler" in lines
    assert lines[-1] == "trainguard[events]: finish (Finish) -> no handler"
    assert lines.count("trainguard[events]: step_start (StepStart) -> StaleGradients.on_step_start") == 3


def test_debug_trace_marks_a_handler_that_failed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from trainguard.runtime.detectors.stale_gradients import StaleGradients

    def broken(self: object, event: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(StaleGradients, "on_step_start", broken)
    monkeypatch.setenv("TRAINGUARD_DEBUG", "events")
    with trainguard.watch(echo=False, select="TG101"):
        train_without_zero_grad()
    err = capsys.readouterr().err
    assert err.count("step_start (StepStart) -> StaleGradients.on_step_start (failed: now off)") == 1
    assert "step_start (StepStart) -> no handler" in err


# -- reporters ---------------------------------------------------------------------------------


def test_a_subscribed_reporter_hears_each_new_finding_once_and_the_end() -> None:
    recorder = Recorder()
    with trainguard.watch(echo=False) as handle:
        handle.session.subscribe(recorder)
        train_without_zero_grad(steps=4)  # TG101 at steps 1, 2 and 3: one finding, counted 3 times
    assert recorder.calls == [("finding", "TG101"), ("finish", ["TG101"])]


def test_strict_stops_only_after_every_reporter_heard_of_the_finding() -> None:
    recorder = Recorder()
    with pytest.raises(GuardStop):
        with trainguard.watch(echo=False, strict=True) as handle:
            handle.session.subscribe(recorder)  # subscribed after the strict stop
            train_without_zero_grad()
    assert recorder.calls[0] == ("finding", "TG101")


def test_a_faulty_reporter_is_contained_reported_and_unsubscribed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Faulty(Reporter):
        calls = 0

        def on_finding(self, finding: Finding) -> None:
            Faulty.calls += 1
            raise OSError("disk full")

    stream = tmp_path / "findings.jsonl"
    session = GuardSession(GuardConfig.build(echo=False, stream_path=str(stream)))
    faulty = Faulty()
    session.subscribe(faulty)
    session.install()
    try:
        train_without_zero_grad()
    finally:
        session.uninstall()
    records = [json.loads(line) for line in stream.read_text().splitlines()]
    assert Faulty.calls == 1 and [f.code for f in session.findings()] == ["TG101"]
    assert {"internal_error": "Faulty.on_finding", "detail": "OSError: disk full", "rank": None} in records
    assert "internal error in Faulty.on_finding" in capsys.readouterr().err
