"""What a probe is and what it returns.

A probe is one small, independent check of a set-up (`Probe`): it runs on a `ProbeContext` and
returns an `Outcome` (a one-line summary, findings, evidence numbers, optionally a table and a
plot). The runner turns that into a `ProbeResult` whose verdict follows from the findings:
an error finding fails the probe, a warning makes it `warn`, otherwise it passes. A probe that
cannot apply (no GPU, not a classification loss, out of time) is `skip`, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Literal

from trainguard.catalogue import UnknownRuleError, get_rule
from trainguard.doctor.places import NOWHERE, Place
from trainguard.findings import Finding, Severity

if TYPE_CHECKING:
    from trainguard.doctor.context import ProbeContext


class Verdict(str, Enum):
    """A probe's outcome: passed, warned, failed, or skipped with a reason."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass
class Table:
    """Rows of numbers shown under a probe in every report format."""

    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Plot:
    """A chart of a probe's numbers: `bars` (label, value) or a `line` (x, y), drawn as inline SVG."""

    kind: Literal["bars", "line"]
    title: str
    points: list[tuple[Any, float]]
    x_label: str = ""
    log_y: bool = False


@dataclass
class Outcome:
    """What a probe's function returns."""

    summary: str
    findings: list[Finding] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    table: Table | None = None
    plot: Plot | None = None
    skipped: bool = False

    @classmethod
    def skip(cls, reason: str, **evidence: Any) -> Outcome:
        """An outcome saying why the probe does not apply (no GPU, out of time, ...)."""
        return cls(reason, evidence=evidence, skipped=True)


# What a probe needs from the set-up before it can say anything: the model's forward pass on a
# training batch, or the loss on it. When that fails, the probes needing it are skipped and only
# `loss-at-init` reports the failure, instead of every probe repeating the same exception.
Requirement = Literal["nothing", "forward", "loss"]


@dataclass(frozen=True)
class Probe:
    """A named check. `applies` says why the probe cannot apply here (no GPU), or None; it is asked
    before `requires`, so that a probe that could never run says so rather than naming a blocker."""

    name: str
    title: str
    run: Callable[[ProbeContext], Outcome]
    requires: Requirement = "loss"
    applies: Callable[[ProbeContext], str | None] = lambda context: None


@dataclass
class ProbeResult:
    """One probe's result in a doctor run: verdict, summary, findings, numbers and time taken."""

    name: str
    title: str
    verdict: Verdict
    summary: str
    seconds: float
    findings: list[Finding] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    table: Table | None = None
    plot: Plot | None = None

    @property
    def fix(self) -> str:
        """The fix of the most severe finding ("" when the probe passed)."""
        ranked = sorted(self.findings, key=lambda finding: -finding.severity.rank)
        return next((finding.fix for finding in ranked if finding.fix), "")

    @classmethod
    def from_outcome(cls, probe: Probe, outcome: Outcome, seconds: float) -> ProbeResult:
        """The result of `probe`, whose function returned `outcome` after `seconds`."""
        for finding in outcome.findings:  # which probe made it, for the reports' sections and for scripts
            finding.evidence["probe"] = probe.name
        return cls(probe.name, probe.title, verdict_of(outcome), outcome.summary, round(seconds, 3),
                   outcome.findings, outcome.evidence, outcome.table, outcome.plot)

    def to_dict(self) -> dict[str, Any]:
        """The probe's entry in the JSON report's `probes` list."""
        data: dict[str, Any] = {
            "name": self.name, "title": self.title, "verdict": self.verdict.value, "summary": self.summary,
            "seconds": self.seconds, "fix": self.fix, "evidence": self.evidence,
        }
        if self.table is not None:
            data["table"] = {"columns": self.table.columns, "rows": self.table.rows}
        if self.plot is not None:
            data["plot"] = {"kind": self.plot.kind, "title": self.plot.title, "points": self.plot.points,
                            "x_label": self.plot.x_label, "log_y": self.plot.log_y}
        return data


def verdict_of(outcome: Outcome) -> Verdict:
    """`skip` for a skipped outcome, else `fail` / `warn` / `pass` by the most severe finding."""
    if outcome.skipped:
        return Verdict.SKIP
    worst = max((finding.severity.rank for finding in outcome.findings), default=Severity.INFO.rank)
    if worst >= Severity.ERROR.rank:
        return Verdict.FAIL
    return Verdict.WARN if worst >= Severity.WARNING.rank else Verdict.PASS


def make_finding(rule: str, message: str, *, fix: str, place: Place = NOWHERE,
                 evidence: dict[str, Any] | None = None, severity: Severity | None = None) -> Finding:
    """A doctor finding. `rule` is a catalogue slug (code and default severity from the catalogue)
    or, where no catalogue rule fits, the probe's name: then the code is "" and `severity` is needed."""
    try:
        catalogued = get_rule(rule)
    except UnknownRuleError:
        if severity is None:
            raise ValueError(f"finding {rule!r} is not in the catalogue: give its severity") from None
        code, slug = "", rule
    else:
        code, slug, severity = catalogued.code, catalogued.slug, severity or catalogued.severity
    return Finding(rule=slug, code=code, severity=severity, message=message, path=place[0], line=place[1],
                   fix=fix, evidence=evidence or {})
