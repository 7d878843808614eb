"""`watch()` / `unwatch()`: the in-code face of the runtime guard.

This module imports no torch at import time, so that `import trainguard` stays cheap for the
static checks and the CLI.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Iterable, Mapping

from trainguard.findings import Finding
from trainguard.runtime.reporters import GuardStop

if TYPE_CHECKING:
    from trainguard.runtime.config import GuardConfig
    from trainguard.runtime.session import GuardSession

__all__ = ["GuardStop", "Watch", "active_session", "findings", "install", "unwatch", "watch"]


_active: GuardSession | None = None


class Watch:
    """Handle returned by `watch()`; a context manager that uninstalls the guard on exit."""

    def __init__(self, session: GuardSession, owner: bool) -> None:
        self.session = session
        self._owner = owner

    @property
    def findings(self) -> list[Finding]:
        return self.session.findings()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._owner:
            unwatch()


def watch(
    *,
    select: str | Iterable[str] | None = None,
    ignore: str | Iterable[str] | None = None,
    strict: bool = False,
    echo: bool = True,
    thresholds: Mapping[str, float] | None = None,
    metrics: str | None = None,
    tensorboard: str | None = None,
) -> Watch:
    """Install the runtime guard in this process and return its handle.

    `select`/`ignore` take rule codes, slugs or code prefixes. `strict=True` raises `GuardStop`
    at the first error finding. `echo` prints each new finding to stderr as it is made.
    `thresholds` overrides numeric-health thresholds (see trainguard.runtime.thresholds);
    `metrics` is a JSON-lines file for the metrics stream, `tensorboard` a folder for TensorBoard
    scalars (when tensorboard is installed). If a
    guard is already installed (e.g. under `trainguard run`), the existing one is returned and
    leaving the `with` block does not uninstall it.
    """
    from trainguard.runtime.config import GuardConfig

    config = GuardConfig.build(
        select=select, ignore=ignore, strict=strict, echo=echo,
        thresholds=thresholds, metrics_path=metrics, tensorboard_dir=tensorboard,
    )
    return install(config)


def install(config: GuardConfig) -> Watch:
    """`watch()` with a full configuration (the launcher's way in: rank, findings stream)."""
    global _active
    if _active is not None:
        return Watch(_active, owner=False)
    from trainguard.runtime.session import GuardSession

    session = GuardSession(config)
    session.install()
    _active = session
    return Watch(session, owner=True)


def unwatch() -> list[Finding]:
    """Uninstall the guard (undoing every hook and patch) and return its findings."""
    global _active
    session, _active = _active, None
    if session is None:
        return []
    session.uninstall()
    return session.findings()


def findings() -> list[Finding]:
    """The findings of the installed guard so far (empty when none is installed)."""
    return _active.findings() if _active is not None else []


def active_session() -> GuardSession | None:
    return _active
