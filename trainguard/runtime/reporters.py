"""Reporters: the subscribers to a session's findings.

A reporter is told of each new finding (`on_finding`, at the moment it is made), of each fault of
the guard itself (`on_internal_error`) and of the end of the session (`on_finish`, with every
finding and its final count). The session builds the reporters its configuration asks for
(`reporters_for`); others, such as the trainer integrations, `subscribe` themselves. A reporter
may stop the run by raising `GuardStop` from `on_finding`: every reporter still hears of the
finding first.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from trainguard.findings import Finding, Severity

if TYPE_CHECKING:
    from trainguard.runtime.config import GuardConfig


class GuardStop(BaseException):
    """Raised into the user's run by `strict=True` at the first error finding.

    A BaseException (like KeyboardInterrupt) so that a user's `except Exception:` does not
    swallow it.
    """

    def __init__(self, finding: Finding) -> None:
        super().__init__(f"{finding.code} {finding.rule}: {finding.message}")
        self.finding = finding


class Reporter:
    """Base of the findings' subscribers: every notification is optional."""

    def on_finding(self, finding: Finding) -> None:
        """A new finding (a repeat of a known one only raises its count, and is not announced)."""

    def on_internal_error(self, where: str, detail: str, rank: int | None) -> None:
        """A fault inside the guard, contained; the check `where` is now off."""

    def on_finish(self, findings: list[Finding]) -> None:
        """The session ended; `findings` carry their final counts."""


class ConsoleEcho(Reporter):
    """Prints each new finding to stderr as it is made (`echo`, on by default)."""

    def __init__(self) -> None:
        self._console: Any = None

    def on_finding(self, finding: Finding) -> None:
        from trainguard.console import format_finding, make_console

        if self._console is None:
            self._console = make_console(sys.stderr)
        prefix = "trainguard" if finding.rank is None else f"trainguard[rank {finding.rank}]"
        self._console.print(f"[bold magenta]{prefix}:[/] ", end="")
        self._console.print(format_finding(finding), end="")


class FindingsStream(Reporter):
    """The JSON-lines file `trainguard run` reads back: each new finding and internal error is
    appended at once, so that the report survives a run that is killed; at the end, each finding
    seen more than once again with its final count (the reader keeps the last)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_finding(self, finding: Finding) -> None:
        self._write(finding.to_dict())

    def on_internal_error(self, where: str, detail: str, rank: int | None) -> None:
        self._write({"internal_error": where, "detail": detail, "rank": rank})

    def on_finish(self, findings: list[Finding]) -> None:
        for finding in findings:
            if finding.evidence.get("count", 1) > 1:
                self._write(finding.to_dict())

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record, default=str) + "\n")


class StrictStop(Reporter):
    """`strict`: stops the run (GuardStop) at the first error finding."""

    def on_finding(self, finding: Finding) -> None:
        if finding.severity is Severity.ERROR:
            raise GuardStop(finding)


def reporters_for(config: GuardConfig) -> list[Reporter]:
    """The reporters a session's configuration asks for, in the order they hear of a finding."""
    reporters: list[Reporter] = []
    if config.stream_path is not None:
        reporters.append(FindingsStream(config.stream_path))
    if config.echo:
        reporters.append(ConsoleEcho())
    if config.strict:
        reporters.append(StrictStop())
    return reporters
