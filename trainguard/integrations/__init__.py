"""Trainer integrations: the runtime guard inside PyTorch Lightning and the Hugging Face Trainer.

    from trainguard.integrations.lightning import TrainguardCallback      # lightning.pytorch
    from trainguard.integrations.transformers import TrainguardCallback   # transformers.Trainer

Each callback installs the guard when training starts (or uses the one already installed, e.g.
under `trainguard run`), logs each new finding through the framework's own logging the moment it
is made (the callback subscribes to the session's findings), keeps the
findings in `.findings`, writes the JSON report to `report=PATH` at the end, and removes the guard
when training ends if it installed it. Rules whose subject the framework takes care of itself are
quiet by default (listed with the reason in each module). See docs/integrations.md.

This package imports neither framework: each module imports its framework when it is imported,
and says which package to install when it is missing. The callbacks' shared half, `TrainerGuard`,
is here.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

from trainguard.catalogue import RuleSelection, split_names
from trainguard.console import format_finding
from trainguard.findings import Finding, Severity
from trainguard.report import build_report, write_report
from trainguard.runtime.api import Watch, watch
from trainguard.runtime.reporters import Reporter
from trainguard.runtime.thresholds import Thresholds

_LOG_LEVELS = {Severity.ERROR: logging.ERROR, Severity.WARNING: logging.WARNING, Severity.INFO: logging.INFO}


def require(module: str, package: str, integration: str) -> Any:
    """Import `module`, or raise an ImportError that names the pip package to install (typed Any:
    its classes, such as a trainer's callback base, are known only once it is imported)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{integration} needs the {package!r} package, which is not installed: pip install {package}"
        ) from error


def finding_log_line(finding: Finding) -> str:
    """A finding as plain text for a log record: place, rule, message, evidence and fix."""
    return "trainguard: " + format_finding(finding).plain.rstrip()


class TrainerGuard(Reporter):
    """The framework-independent half of both trainer callbacks (a mixin of theirs), subscribed
    to the session's findings while training runs.

    `report`: path of the JSON report written when training ends. `include_prevented`: also run
    the rules the framework takes care of (each integration's `PREVENTED`). `select`, `ignore`,
    `strict`, `thresholds`, `metrics`, `tensorboard`: as `trainguard.watch()` takes them;
    `strict=True` stops training at the first error finding. A subclass sets `findings_logger`,
    calls `_start_guard` when training starts and `close` at the end.
    """

    findings_logger: ClassVar[logging.Logger]

    def __init__(
        self,
        report: str | Path | None = None,
        *,
        select: str | Iterable[str] | None = None,
        ignore: str | Iterable[str] | None = None,
        strict: bool = False,
        thresholds: Mapping[str, float] | None = None,
        metrics: str | None = None,
        tensorboard: str | None = None,
        include_prevented: bool = False,
    ) -> None:
        super().__init__()
        self._report = report
        self._select, self._ignore = select, split_names(ignore)
        self._strict = strict
        # Checked now, so that a wrong rule or threshold name fails in the user's constructor
        # call rather than when training starts.
        self._selection = RuleSelection.build(select, ignore)
        Thresholds.build(thresholds)
        self._thresholds = dict(thresholds or {})
        self._metrics, self._tensorboard = metrics, tensorboard
        self._include_prevented = include_prevented
        self._handle: Watch | None = None
        self._logged: set[tuple] = set()
        self._log = True
        self._final: list[Finding] = []

    @property
    def findings(self) -> list[Finding]:
        """The findings of the current (or, once it ended, the last) training run."""
        if self._handle is None:
            return list(self._final)
        return [f for f in self._handle.findings if f.code in self._selection]

    def _start_guard(self, prevented: Mapping[str, str]) -> None:
        """Install the guard (or use the installed one); `prevented` rules stay quiet."""
        if self._handle is not None:
            return
        quiet = [] if self._include_prevented else list(prevented)
        self._selection = RuleSelection.build(self._select, [*self._ignore, *quiet])
        self._logged.clear()
        self._final = []
        # echo=False: findings reach the user through the framework's logger instead.
        self._handle = watch(
            select=sorted(self._selection.codes), strict=self._strict, echo=False,
            thresholds=self._thresholds, metrics=self._metrics, tensorboard=self._tensorboard,
        )
        # A guard installed before (`trainguard run`) that prints its findings itself is not
        # echoed a second time through the logger.
        self._log = not self._handle.session.config.echo
        self._handle.session.subscribe(self)
        self._flush_findings()  # those an installed guard made before training started

    def on_finding(self, finding: Finding) -> None:
        """Log a new finding of the selected rules through the framework's logger."""
        if finding.code in self._selection:
            self._log_once(finding)

    def _flush_findings(self) -> None:
        """Log each finding not logged yet (one made before the subscription, or whose
        notification a strict stop cut short)."""
        for finding in self.findings:
            self._log_once(finding)

    def _log_once(self, finding: Finding) -> None:
        if finding.key in self._logged:
            return
        self._logged.add(finding.key)
        if self._log:
            self.findings_logger.log(_LOG_LEVELS[finding.severity], finding_log_line(finding))

    def close(self) -> None:
        """End the guard's part now: log what is left, remove the guard if this callback
        installed it, write the report. The trainer calls it when training ends; idempotent."""
        if self._handle is None:
            return
        self._flush_findings()
        self._final = self.findings
        handle, self._handle = self._handle, None
        handle.session.unsubscribe(self)
        handle.__exit__(None, None, None)  # uninstalls only a guard this handle installed
        if self._report is not None:
            write_report(self._report, build_report("run", self._final))
