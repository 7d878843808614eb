"""SIGTERM (a scheduler's preemption notice) turned into a flag that fit() reads at step boundaries,
so that it can checkpoint and return cleanly instead of dying mid-step."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class TerminationRequest:
    """A context manager: while active, SIGTERM sets `requested` instead of ending the process.

    Signal handlers can only be installed from the main thread; elsewhere SIGTERM keeps its
    ordinary meaning. The previous handler is put back on exit.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __enter__(self) -> TerminationRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False
