"""`# trainguard: ignore[slug-or-code, ...]` comments: which rules are silenced on which lines."""

from __future__ import annotations

import ast
import io
import re
import tokenize

from trainguard.catalogue import RULES

_DIRECTIVE = re.compile(r"#\s*trainguard:\s*ignore(?:\[([^\]]*)\])?", re.I)
ALL = "*"


def _codes_for(name: str) -> set[str]:
    """Codes a name in an ignore comment stands for: a code, a slug or a code prefix (`TG1`)."""
    name = name.strip()
    if not name:
        return set()
    prefix = name.upper()
    return {rule.code for rule in RULES if rule.code.startswith(prefix) or rule.slug == name.lower()}


def find_suppressions(source: str) -> dict[int, set[str]]:
    """Line -> codes silenced there (`ALL` for a bare `# trainguard: ignore`).

    Only real comments count (a string that contains the text does not), so the source is
    tokenized, but only when the directive appears at all: most files pay one substring search.
    """
    if "trainguard:" not in source and "trainguard :" not in source:
        return {}
    found: dict[int, set[str]] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.COMMENT:
                continue
            match = _DIRECTIVE.search(token.string)
            if match is None:
                continue
            codes = found.setdefault(token.start[0], set())
            if match.group(1) is None:
                codes.add(ALL)
            else:
                for name in match.group(1).split(","):
                    codes |= _codes_for(name)
    except (tokenize.TokenError, SyntaxError):
        pass  # the file parsed, so this is only a tokenizer corner case: keep what was found
    return found


# A comment on any line of a statement counts, for statements of up to this many lines (a call
# spread over several lines); a longer block only counts on the reported line itself.
MAX_STATEMENT_LINES = 10


def statement_lines(source: str) -> dict[int, tuple[int, int]]:
    """Line -> (first, last) line of the simple statement holding it (short statements only)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    spans: dict[int, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not hasattr(node, "body") and node.end_lineno is not None:
            if node.end_lineno - node.lineno < MAX_STATEMENT_LINES:
                for line in range(node.lineno, node.end_lineno + 1):
                    spans[line] = (node.lineno, node.end_lineno)
    return spans


def is_suppressed(suppressions: dict[int, set[str]], code: str, first_line: int, last_line: int) -> bool:
    """Silenced by a comment on any line of the reported statement (a call may span lines)."""
    for line in range(first_line, last_line + 1):
        codes = suppressions.get(line)
        if codes and (ALL in codes or code in codes):
            return True
    return False
