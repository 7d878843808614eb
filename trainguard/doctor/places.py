"""Where in the user's code a doctor finding points: a class, a function, or the line in them that
matches what the probe saw (the `self.layers = [...]` assignment, the `softmax` call)."""

from __future__ import annotations

import inspect
import re
from typing import Any

from trainguard.doctor.setup import display_path

Place = tuple[str | None, int | None]
NOWHERE: Place = (None, None)


def place_of(obj: Any, pattern: str | None = None) -> Place:
    """File and line of `obj` (a class or function); with `pattern`, of the first source line
    of `obj` matching that regular expression, falling back to where `obj` starts."""
    try:
        path = inspect.getsourcefile(obj)
        lines, start = inspect.getsourcelines(obj)
    except (TypeError, OSError):
        return NOWHERE
    if pattern is not None:
        compiled = re.compile(pattern)
        for offset, text in enumerate(lines):
            if compiled.search(text):
                return display_path(path), start + offset
    return display_path(path), start


def attribute_place(owner: type, attribute: str) -> Place:
    """Where a class assigns `self.<attribute>` (its `__init__`), else where the class starts."""
    init = owner.__dict__.get("__init__")
    if init is not None:
        path, line = place_of(init, rf"self\.{re.escape(attribute)}\s*(:[^=]*)?=")
        if line is not None:
            return path, line
    return place_of(owner)
