"""Keeps the warnings that PyTorch raises inside wrapped calls pointing at the user's line.

A warning issued with `warnings.warn(..., stacklevel=N)` names the frame N levels up, and the
probes' wrappers put frames of their own between PyTorch and the user's code: `F.mse_loss`'s
"Using a target size ..." (stacklevel=2) would name the loss wrapper instead of the user's call.
While the guard is installed, `warnings.warn` steps over the wrappers' frames, so a warning names
the frame it names without the guard; Python then applies the filters and the once-per-location
registry of that frame, and an "error" filter raises where it would without the guard.
Nothing else changes: a warning whose frame is not a wrapper's is issued exactly as asked.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable

from torch.compiler import is_compiling

from trainguard.runtime.probes import Patches

if TYPE_CHECKING:
    from trainguard.runtime.context import ObserverContext

# Every wrapper the guard puts around a user's call is defined in this package.
WRAPPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")


class WarningOrigin:
    """Installs the `warnings.warn` that skips the wrappers' frames, and restores the original."""

    def __init__(self, session: ObserverContext) -> None:
        self._patches = Patches()

    def install(self) -> None:
        self._patches.set(warnings, "warn", skipping_wrappers(warnings.warn))

    def uninstall(self) -> None:
        self._patches.undo()


def skipping_wrappers(original: Callable[..., Any]) -> Callable[..., Any]:
    """`original` (warnings.warn) with the stack level moved past the wrappers' frames."""

    def warn(message: Any, category: Any = None, stacklevel: int = 1, source: Any = None, **kwargs: Any) -> Any:
        if is_compiling():  # torch.compile traces this: no frames to walk
            return original(message, category, stacklevel, source, **kwargs)
        if "skip_file_prefixes" in kwargs:  # Python 3.12+: let Python skip the wrappers too
            kwargs["skip_file_prefixes"] = (*kwargs["skip_file_prefixes"], WRAPPERS)
            return original(message, category, stacklevel + 1, source, **kwargs)
        frame: FrameType | None = sys._getframe(1)  # the caller of warn: stack level 1
        for _ in range(stacklevel - 1):
            if frame is None:
                break
            frame = frame.f_back
        while frame is not None and frame.f_code.co_filename.startswith(WRAPPERS):
            frame = frame.f_back
            stacklevel += 1
        return original(message, category, stacklevel + 1, source, **kwargs)  # + 1: this frame

    return warn
