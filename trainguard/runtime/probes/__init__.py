"""Probes: each turns one corner of PyTorch (modules, optimizers, functions, data) into events.

A probe uses PyTorch's public hooks where they exist and patches a function only where none does
(loss functions, backward, clipping, `torch.load`, GradScaler, schedulers, DataLoader iteration,
the `__call__` of a model's class); `uninstall()` removes every hook and restores every patch.
Hooks and wrappers keep the guard's state in the guard, never in the user's objects.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Protocol

from torch.compiler import is_compiling


class Probe(Protocol):
    def install(self) -> None: ...

    def uninstall(self) -> None: ...


_INHERITED = object()  # the patched class had no attribute of its own: undo deletes the patch


class Patches:
    """Replaces attributes and remembers the originals, so that every patch can be undone."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        """Set `owner.name = value` as it is; on a class that only inherits `name`, undoing
        deletes the class's own attribute again."""
        saved = owner.__dict__.get(name, _INHERITED) if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, value)
        self._saved.append((owner, name, saved))

    def replace(self, owner: Any, name: str, make: Callable[[Any], Any], checks_compiling: bool = False) -> None:
        """Set `owner.name = make(original)`; `make` builds the wrapper around the original.

        While torch.compile traces, the original is called instead: the guard's bookkeeping
        must never be traced into (or break) a compiled graph. A wrapper made with
        `checks_compiling` does that test itself and is set as it is: one call less on the
        paths run at every training step.
        """
        saved = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        self._saved.append((owner, name, saved))
        original = getattr(owner, name)
        wrapper = make(original)
        if checks_compiling:
            setattr(owner, name, functools.wraps(original)(wrapper))
            return

        @functools.wraps(original)
        def patched(*args: Any, **kwargs: Any) -> Any:
            if is_compiling():
                return original(*args, **kwargs)
            return wrapper(*args, **kwargs)

        setattr(owner, name, patched)

    def undo(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
