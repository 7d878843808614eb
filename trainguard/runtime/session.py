"""The guard's one installed session: probes turn hooks into events, detectors turn events into
findings, reporters subscribe to the findings, and the session keeps the findings, contains the
guard's own faults and undoes it all.

This module is the composition root: it alone builds the probes, detectors, components and
reporters, and hands each the session typed as the narrow context it needs (runtime.context);
nothing else of the runtime imports it but the in-code face (runtime.api).

`TRAINGUARD_DEBUG=events` traces to stderr every event emitted and the handlers that handled it;
the choice is made when the session is built, so a session without it pays nothing.
"""

from __future__ import annotations

import linecache
import os
import sys
import traceback
import weakref
from types import MethodType
from typing import Any, Callable

from torch.optim import Optimizer

from trainguard.findings import Finding, Severity
from trainguard.runtime.callsite import Location, source_path
from trainguard.runtime.config import GuardConfig
from trainguard.runtime.context import FULL_STEPS, WINDOW_EVERY, ObserverContext, Window
from trainguard.runtime.detectors import load_detectors
from trainguard.runtime.events import EVENTS, Finish, subscriptions
from trainguard.runtime.measurements import Measurements
from trainguard.runtime.metrics_stream import MetricsStream
from trainguard.runtime.probes import Probe
from trainguard.runtime.probes.data import DataProbe
from trainguard.runtime.probes.functions import FunctionProbe
from trainguard.runtime.probes.modules import ModuleProbe
from trainguard.runtime.probes.optimizers import OptimizerProbe
from trainguard.runtime.probes.warning_origin import WarningOrigin
from trainguard.runtime.reporters import GuardStop, Reporter, reporters_for
from trainguard.runtime.state import OptimizerState, RootModule
from trainguard.suppression import find_suppressions, is_suppressed, statement_lines

DEBUG_VARIABLE = "TRAINGUARD_DEBUG"


def debug_topics() -> set[str]:
    """What `TRAINGUARD_DEBUG` (comma-separated, e.g. `events`) asks to trace."""
    return {topic.strip() for topic in os.environ.get(DEBUG_VARIABLE, "").split(",") if topic.strip()}


def make_probes(session: ObserverContext) -> list[Probe]:
    """The probes, in the order they are installed."""
    modules = ModuleProbe(session)
    return [WarningOrigin(session), OptimizerProbe(session), modules, FunctionProbe(session, modules), DataProbe(session)]


class GuardSession:
    """Installs probes and detectors, dispatches events, collects findings."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self.step = 0
        self.steps_taken = 0  # optimizer steps of all optimizers
        self.detailed = True
        # Whether this step's gradients are followed (zero_grad calls, accumulations): in detailed
        # steps and in the step before each window, so that the window starts from a known gradient.
        self.follows_gradients = True
        self.window = Window()
        # Called when a steady-state step begins: probes take off what only detailed steps need.
        self.steady_begins: list[Callable[[], None]] = []
        # Shared with the probes that fill them: the models seen, and every optimizer made.
        self.roots: dict[int, RootModule] = {}
        self.optimizer_states: weakref.WeakKeyDictionary[Optimizer, OptimizerState] = weakref.WeakKeyDictionary()
        self._findings: dict[tuple, Finding] = {}
        # Per source file: line -> codes silenced there, and line -> its statement's lines.
        self._suppressions: dict[str, tuple[dict[int, set[str]], dict[int, tuple[int, int]]]] = {}
        self._internal_errors: dict[str, str] = {}
        self._installed = False
        self.detectors = [cls(self) for cls in load_detectors() if cls.code in config.selection]
        # Components that derive events (measurements) or write them (metrics) come first.
        components: list[Any] = []
        wants_numbers = any(hasattr(d, name) for d in self.detectors for name in ("on_measured", "on_losses_read", "on_evaluated"))
        # The probes hand it the losses of steady-state steps (summed on the device).
        self.measurements: Measurements | None = None
        if wants_numbers or config.metrics_path or config.tensorboard_dir:
            self.measurements = Measurements(self)
            components.append(self.measurements)
        if config.metrics_path or config.tensorboard_dir:
            components.append(MetricsStream(self, config.metrics_path, config.tensorboard_dir))
        self._handlers: dict[str, list[MethodType]] = {name: [] for name in EVENTS}
        for subscriber in components + self.detectors:
            for name, handler in subscriptions(subscriber).items():
                self._handlers[name].append(handler)
        self._reporters: list[Reporter] = reporters_for(config)
        if "events" in debug_topics():
            self.emit = self._emit_traced  # type: ignore[method-assign]
        self.probes = make_probes(self)

    # -- life cycle ------------------------------------------------------------------------
    def install(self) -> None:
        self._installed = True
        for probe in self.probes:
            try:
                probe.install()
            except Exception as error:  # run on, with what could be installed
                self.internal_error(f"install {type(probe).__name__}", error)

    def uninstall(self) -> None:
        if not self._installed:
            return
        self._installed = False
        try:
            self.emit("finish", Finish(), may_stop=False)
        finally:
            for probe in reversed(self.probes):
                try:
                    probe.uninstall()
                except Exception as error:  # never leave a half-undone guard unreported
                    self.internal_error(f"uninstall {type(probe).__name__}", error)
            findings = self.findings()
            for reporter in list(self._reporters):
                self._notify(reporter, "on_finish", findings)

    # -- events ----------------------------------------------------------------------------
    def emit(self, name: str, event: Any, may_stop: bool = True) -> None:
        """Call every handler of the event `name` (declared in events.EVENTS) with `event`."""
        for handler in self._handlers[name]:
            try:
                handler(event)
            except GuardStop:
                if may_stop:
                    raise
            except Exception as error:
                self.internal_error(f"{type(handler.__self__).__name__}.on_{name}", error)
                self._handlers[name] = [h for h in self._handlers[name] if h is not handler]

    def handles(self, name: str) -> bool:
        """Whether anything subscribes to the event `name` (a probe may then skip observing it)."""
        return bool(self._handlers[name])

    def _emit_traced(self, name: str, event: Any, may_stop: bool = True) -> None:
        """`emit`, then a line on stderr: the event and the handlers that handled it."""
        handlers = self._handlers[name]
        try:
            GuardSession.emit(self, name, event, may_stop)
        finally:
            kept = self._handlers[name]
            handled = [
                f"{type(handler.__self__).__name__}.on_{name}" + ("" if handler in kept else " (failed: now off)")
                for handler in handlers
            ]
            sys.stderr.write(f"trainguard[events]: {name} ({type(event).__name__}) -> {', '.join(handled) or 'no handler'}\n")

    def step_finished(self, index: int) -> None:
        """Called by the optimizer probe after every optimizer step: decides whether the next
        step is detailed (see FULL_STEPS)."""
        if index >= self.step:
            self.step = index + 1
        step, was_detailed = self.step, self.detailed
        self.steps_taken += 1
        self.window.reset()
        self.detailed = step < FULL_STEPS or step % WINDOW_EVERY == 0
        self.follows_gradients = self.detailed or (step + 1) % WINDOW_EVERY == 0
        if was_detailed and not self.detailed:
            for leave in self.steady_begins:
                leave()

    def phase_changed(self) -> None:
        """A phase begins (a model called in a new mode, a resume, a new optimizer or loader):
        the rest of the current step is observed in full."""
        self.detailed = self.follows_gradients = True

    # -- findings --------------------------------------------------------------------------
    def report(
        self,
        code: str,
        rule: str,
        severity: Severity,
        message: str,
        location: Location,
        fix: str,
        evidence: dict[str, Any] | None = None,
        step: int | None = None,
    ) -> Finding | None:
        """Record a finding, or bump the count of the same rule at the same place; None when a
        `# trainguard: ignore[...]` comment on its line silences it."""
        if self._silenced(code, location):
            return None
        finding = Finding(
            rule=rule,
            code=code,
            severity=severity,
            message=message,
            path=location.path,
            line=location.line,
            step=self.step if step is None else step,
            rank=self.config.rank,
            fix=fix,
            evidence=dict(evidence or {}),
        )
        known = self._findings.get(finding.key)
        if known is not None:
            known.evidence["count"] = known.evidence.get("count", 1) + 1
            return known
        finding.evidence["count"] = 1
        self._findings[finding.key] = finding
        stop: GuardStop | None = None
        for reporter in list(self._reporters):
            try:
                self._notify(reporter, "on_finding", finding)
            except GuardStop as raised:  # every reporter hears of the finding before the run stops
                stop = stop or raised
        if stop is not None:
            raise stop
        return finding

    # -- reporters -------------------------------------------------------------------------
    def subscribe(self, reporter: Reporter) -> None:
        """Tell `reporter` of every new finding from now on, of internal errors and of the end."""
        self._reporters.append(reporter)

    def unsubscribe(self, reporter: Reporter) -> None:
        self._reporters = [known for known in self._reporters if known is not reporter]

    def _notify(self, reporter: Reporter, method: str, *args: Any) -> None:
        """Call one reporter; a fault of it is contained, reported once, and ends its subscription."""
        try:
            getattr(reporter, method)(*args)
        except GuardStop:
            raise
        except Exception as error:
            self.unsubscribe(reporter)
            self.internal_error(f"{type(reporter).__name__}.{method}", error)

    def _silenced(self, code: str, location: Location) -> bool:
        if location.path is None or location.line is None:
            return False
        known = self._suppressions.get(location.path)
        if known is None:
            source = "".join(linecache.getlines(source_path(location.path)))
            suppressions = find_suppressions(source)
            # Parsed only when the file has a directive at all (findings are rare; this is cached).
            known = self._suppressions[location.path] = (suppressions, statement_lines(source) if suppressions else {})
        suppressions, statements = known
        first, last = statements.get(location.line, (location.line, location.line))
        return is_suppressed(suppressions, code, first, last)

    def findings(self) -> list[Finding]:
        return list(self._findings.values())

    @property
    def internal_errors(self) -> dict[str, str]:
        return dict(self._internal_errors)

    def internal_error(self, where: str, error: BaseException) -> None:
        """A fault inside the guard: contained, reported once, never raised into the user's run."""
        if where in self._internal_errors:
            return
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        self._internal_errors[where] = detail
        sys.stderr.write(f"trainguard: internal error in {where} (that check is now off; please report it): {detail}\n")
        for reporter in list(self._reporters):
            self._notify(reporter, "on_internal_error", where, detail, self.config.rank)
