"""Every runtime detector against small real training scripts (tests/runtime/fixtures/).

`fire_<rule slug>_<what>.py` must produce exactly the findings its `# expect:` comments name, on
those lines (and at those steps, with those severities when given); `silent_<what>.py` is tricky
correct code that must produce no finding at all. An expectation is a trailing comment on the
line the finding must point at; several share a line separated by `;`:

    optimizer.step()  # expect: TG101 step=1
    val_loss = loss_fn(model(x), y).item()  # expect: TG201 step=1; TG203 step=1
    loss = F.cross_entropy(log_probs, y)  # expect: TG302 step=0 severity=info
"""

from __future__ import annotations

import re
import runpy
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import trainguard
from trainguard.catalogue import get_rule
from trainguard.findings import Finding
from trainguard.runtime.api import active_session

FIXTURES = Path(__file__).parent / "fixtures"
SCRIPTS = sorted(FIXTURES.glob("*.py"))

_EXPECT = re.compile(r"#\s*expect:\s*(?P<entries>.+)$")
_ENTRY = re.compile(r"^(?P<code>TG\d{3})(?:\s+step=(?P<step>\d+))?(?:\s+severity=(?P<severity>info|warning|error))?$")


@dataclass(frozen=True)
class Expected:
    code: str
    line: int
    step: int | None
    severity: str


def expectations(script: Path) -> list[Expected]:
    """The `# expect:` entries of a fixture, with the line each stands on."""
    found = []
    for number, text in enumerate(script.read_text(encoding="utf-8").splitlines(), start=1):
        match = _EXPECT.search(text)
        if match is None:
            continue
        for entry in match["entries"].split(";"):
            parsed = _ENTRY.match(entry.strip())
            assert parsed, f"{script.name}:{number}: cannot read expectation {entry.strip()!r}"
            step = None if parsed["step"] is None else int(parsed["step"])
            severity = parsed["severity"] or get_rule(parsed["code"]).severity.value
            found.append(Expected(parsed["code"], number, step, severity))
    return found


def run_guarded(script: Path) -> list[Finding]:
    """Run a fixture as `python script.py` would, under a fresh guard, and return its findings."""
    torch.manual_seed(0)
    trainguard.watch(echo=False)
    try:
        # PyTorch's own warnings (e.g. MSE's "target size") are not what these tests judge.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runpy.run_path(str(script), run_name="__main__")
    finally:
        # Uninstall even when the fixture raised, so no guard leaks into the next test.
        found = trainguard.unwatch()
    assert active_session() is None
    return found


def describe(rows: list[tuple[str, int | None, int | None, str]]) -> str:
    return "\n".join(f"  {code} line {line} step {step} {severity}" for code, line, step, severity in sorted(rows, key=str)) or "  (nothing)"


def check_naming(script: Path, expected: list[Expected]) -> None:
    """fire_ fixtures name a rule they expect and expect something; silent_ ones expect nothing."""
    if script.name.startswith("fire_"):
        assert expected, f"{script.name} must expect at least one finding"
        slugs = {get_rule(item.code).slug.replace("-", "_") for item in expected}
        assert any(script.stem.startswith(f"fire_{slug}_") for slug in slugs), (
            f"{script.name} must be named fire_<slug>_<what>.py after a rule it expects ({sorted(slugs)})"
        )
    else:
        assert script.name.startswith("silent_") and not expected, f"{script.name}: silent fixtures expect nothing"


@pytest.mark.parametrize("script", SCRIPTS, ids=[script.stem for script in SCRIPTS])
def test_fixture_findings_match_its_expectations(script: Path) -> None:
    expected = expectations(script)
    check_naming(script, expected)

    found = run_guarded(script)

    got = [(f.code, f.line, f.step, f.severity.value) for f in found]
    wanted = [(e.code, e.line, e.step, e.severity) for e in expected]
    message = f"{script.name}\nfound:\n{describe(got)}\nexpected:\n{describe(wanted)}"
    assert {(f.code, f.line) for f in found} == {(e.code, e.line) for e in expected}, message
    by_place = {(e.code, e.line): e for e in expected}
    for finding in found:
        wanted_here = by_place[(finding.code, finding.line)]
        assert wanted_here.step in (None, finding.step), message
        assert wanted_here.severity == finding.severity.value, message
        assert finding.message, f"{finding.code} in {script.name} lacks a message"
        assert finding.fix == get_rule(finding.code).fix, f"{finding.code} in {script.name}: a fix that is not the catalogue's"
        assert finding.path is not None and finding.path.endswith(script.name), (
            f"{finding.code} points at {finding.path}, not at {script.name}"
        )


def test_expectation_comments_are_read_with_line_step_and_severity(tmp_path: Path) -> None:
    script = tmp_path / "fire_stale_gradients_example.py"
    script.write_text("x = 1\noptimizer.step()  # expect: TG101 step=1; TG302 severity=info\n")
    assert expectations(script) == [Expected("TG101", 2, 1, "error"), Expected("TG302", 2, None, "info")]
    script.write_text("optimizer.step()  # expect: TG101 at step 1\n")
    with pytest.raises(AssertionError, match="cannot read expectation"):
        expectations(script)


def test_stale_gradients_evidence_counts_every_accumulated_backward_pass() -> None:
    # 4 micro-batches per step, never cleared: the second step sums 2 x 4 backward passes.
    found = run_guarded(FIXTURES / "fire_stale_gradients_accumulation.py")
    assert [(f.code, f.step) for f in found] == [("TG101", 1)]
    assert found[0].evidence == {"backward_passes": 8, "earlier_steps": 1, "count": 2}
    assert "accumulated over 8 backward passes and 1 earlier step" in found[0].message


def test_stale_gradients_evidence_when_the_optimizers_first_parameter_gets_no_gradient(tmp_path: Path) -> None:
    # The sample parameter that counts accumulations is chosen at the first step then; the
    # backward calls of that first window are counted instead.
    script = tmp_path / "accumulation_after_an_unused_parameter.py"
    script.write_text(
        "import torch, torch.nn.functional as F\n"
        "unused, model = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)\n"
        "optimizer = torch.optim.SGD([*unused.parameters(), *model.parameters()], lr=0.05)\n"
        "for step in range(2):\n"
        "    for micro in range(3):\n"
        "        F.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 3, (8,))).backward()\n"
        "    optimizer.step()\n"
    )
    stale = [f for f in run_guarded(script) if f.code == "TG101"]
    assert [(f.line, f.step, f.evidence["backward_passes"]) for f in stale] == [(7, 1, 6)]


def test_gradients_cleared_in_place_before_the_step_are_not_stale_gradients() -> None:
    # zero_grad(set_to_none=False) between backward and step keeps the same .grad tensors, so
    # the next backward looks like an accumulation onto the last step's gradients: it is TG114,
    # and TG101 must not report it too.
    found = run_guarded(FIXTURES / "fire_zero_grad_before_step_keep_tensors.py")
    assert [(f.code, f.step) for f in found] == [("TG114", 1)]
    assert found[0].evidence == {"backward_passes": 1, "steps_in_a_row": 2, "count": 3}
