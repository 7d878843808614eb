"""The `Finding`: one problem trainguard found, in the shape of the report contract."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    """How bad a finding is, ordered by rank: `INFO < WARNING < ERROR`.

    The members are strings (they are the report's values), so every comparison is defined here:
    the str ones would order them alphabetically, making `ERROR < WARNING` true as well.
    """

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass
class Finding:
    """One problem: which rule, where in the user's code, when, the evidence and the fix.

    `path`/`line` point at the user's code (for runtime findings the user frame that made the
    offending call) or are None. `step` is the 0-based optimizer step of a runtime finding (None
    for static findings), `rank` the distributed rank (None outside torchrun). `evidence` holds
    the numbers behind the finding; a finding repeated at the same place carries `count` there.
    """

    rule: str
    code: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None
    step: int | None = None
    rank: int | None = None
    fix: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    column: int | None = None

    @property
    def key(self) -> tuple[str, str | None, int | None, int | None]:
        """Identity for de-duplication: one finding per rule, place and rank."""
        return (self.code, self.path, self.line, self.rank)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        if self.column is None:
            del data["column"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        values["severity"] = Severity(values["severity"])
        return cls(**values)
