"""Collects one file's findings: catalogue data, selection, suppression comments, de-duplication."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from trainguard.catalogue import get_rule
from trainguard.findings import Finding, Severity
from trainguard.suppression import MAX_STATEMENT_LINES, is_suppressed


class Reporter:
    """Turns a rule's report at an AST node into a `Finding`, once per (code, line, column)."""

    def __init__(self, path: str, enabled: frozenset[str], suppressions: dict[int, set[str]]) -> None:
        self.path = path
        self.enabled = enabled
        self.suppressions = suppressions
        self.findings: list[Finding] = []
        self.seen: set[tuple[str, int, int]] = set()
        self.suppressed = 0
        # Nodes of imported project modules (their findings belong to those files' own lint); asked
        # only when something is reported.
        self.is_foreign: Callable[[ast.AST], bool] = lambda node: False

    def report(self, code: str, node: ast.AST, message: str, evidence: dict[str, Any], severity: Severity | None) -> None:
        """Record one finding unless disabled, already reported at this place, or silenced by a comment;
        the fix is the rule's catalogue entry's."""
        if code not in self.enabled or self.is_foreign(node):
            return
        line = getattr(node, "lineno", 1)
        column = getattr(node, "col_offset", 0) + 1
        key = (code, line, column)
        if key in self.seen:
            return
        self.seen.add(key)
        # A multi-line statement may carry its comment on its last line; one line of a long block may not.
        last = getattr(node, "end_lineno", None) or line
        if is_suppressed(self.suppressions, code, line, last if last - line < MAX_STATEMENT_LINES else line):
            self.suppressed += 1
            return
        rule = get_rule(code)
        chosen = rule.severity if severity is None or severity > rule.severity else severity
        self.findings.append(Finding(
            rule=rule.slug,
            code=code,
            severity=chosen,
            message=message,
            path=self.path,
            line=line,
            column=column,
            fix=rule.fix,
            evidence=evidence,
        ))
