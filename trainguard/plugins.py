"""Finding the plugin classes of a package: lint rules and runtime detectors are both discovered
by dropping a module into their package, with no list to keep in sync."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def subclasses_in(package: str, path: Iterable[str], base: type[T], marker: str) -> list[type[T]]:
    """Every subclass of `base` defined in the modules of `package` whose class body sets `marker`
    (abstract intermediates and imported names are left out)."""
    found: list[type[T]] = []
    for info in pkgutil.iter_modules(path):
        module = importlib.import_module(f"{package}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, base) and marker in vars(value) and value.__module__ == module.__name__:
                found.append(value)
    return found
