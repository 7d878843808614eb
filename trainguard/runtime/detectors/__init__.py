"""Runtime detectors: one module per rule, each a `Detector` subclass subscribing to events.

Adding a rule means adding a module here (and its tests); `load_detectors` finds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from trainguard.catalogue import get_rule
from trainguard.findings import Finding, Severity
from trainguard.plugins import subclasses_in
from trainguard.runtime.callsite import Location
from trainguard.runtime.events import subscribed_events

if TYPE_CHECKING:
    from trainguard.runtime.context import DetectorContext


class Detector:
    """Base of the runtime rules: knows its catalogue entry and how to report a finding.

    Subclasses set `code` and define `on_<event>` methods (see runtime.events). Everything else
    about the rule, its fix text included, comes from its catalogue entry (`self.rule`), so that
    the runtime and lint faces print the same fix. `self.session` is the session as a detector
    sees it (runtime.context.DetectorContext): the run's progress and shared state, read-only.
    """

    code: ClassVar[str]

    def __init__(self, session: DetectorContext) -> None:
        self.session = session
        self.rule = get_rule(self.code)

    def report(
        self,
        message: str,
        location: Location,
        *,
        evidence: dict[str, Any] | None = None,
        step: int | None = None,
        severity: Severity | None = None,
    ) -> Finding | None:
        """Report a finding of this rule (None: silenced by an ignore comment on its line)."""
        return self.session.report(
            self.code,
            self.rule.slug,
            severity or self.rule.severity,
            message,
            location,
            self.rule.fix,
            evidence,
            step,
        )


def load_detectors() -> list[type[Detector]]:
    """Every Detector subclass defined in this package's modules, its subscriptions checked: an
    `on_<name>` method for an event that does not exist raises events.UnknownEventError."""
    detectors = sorted(subclasses_in(__name__, __path__, Detector, "code"), key=lambda cls: cls.code)
    for detector in detectors:
        subscribed_events(detector)
    return detectors
