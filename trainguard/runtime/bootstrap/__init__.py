"""The guard's start inside a process launched by `trainguard run`.

The launcher passes its settings in TRAINGUARD_* environment variables. The guard is armed in the
user's process only (for torchrun: in each rank, not in the launcher agent; never in a child of a
guarded process such as a DataLoader worker), and installed right after the user's code imports
torch, so that nothing changes the order in which the user's script configures and imports things.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType, TracebackType
from typing import Any, Sequence

SESSION_DIR = "TRAINGUARD_SESSION_DIR"
LAUNCHER = "TRAINGUARD_LAUNCHER"
OWNER = "TRAINGUARD_GUARDED_PID"
SELECT = "TRAINGUARD_SELECT"
IGNORE = "TRAINGUARD_IGNORE"
STRICT = "TRAINGUARD_STRICT"
ECHO = "TRAINGUARD_ECHO"
METRICS = "TRAINGUARD_METRICS"
TENSORBOARD = "TRAINGUARD_TENSORBOARD"
THRESHOLDS = "TRAINGUARD_THRESHOLDS"

# Empty files in the session folder, one per process, that tell the launcher what was reached:
# "armed" (a Python process of the command) and "guarded" (torch imported, guard installed).
ARMED_MARKER = "armed-"
GUARDED_MARKER = "guarded-"


def _mark(prefix: str) -> None:
    try:
        open(os.path.join(os.environ[SESSION_DIR], f"{prefix}{os.getpid()}"), "w").close()
    except OSError:  # the launcher then says that nothing was guarded; the run itself goes on
        pass


def should_guard(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    if SESSION_DIR not in environ or OWNER in environ:
        return False
    return environ.get(LAUNCHER) != "torchrun" or "RANK" in environ


def arm() -> None:
    if not should_guard():
        return
    os.environ[OWNER] = str(os.getpid())  # children of this process are not guarded again
    _mark(ARMED_MARKER)
    if "torch" in sys.modules:
        start()
    else:
        sys.meta_path.insert(0, _AfterTorchImport())


class _AfterTorchImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of `torch` so that the guard starts once torch is
    fully imported."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        original = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
                return original.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                original.exec_module(module)
                start()

        spec.loader = Loader()
        return spec


def start() -> None:
    """Install the guard in this process, reporting into the launcher's session folder."""
    import json

    from trainguard.runtime.api import GuardStop, install, unwatch
    from trainguard.runtime.config import GuardConfig

    rank = int(os.environ["RANK"]) if os.environ.get(LAUNCHER) == "torchrun" else None
    session_dir = os.environ[SESSION_DIR]
    stream = os.path.join(session_dir, f"findings-{os.getpid()}.jsonl")
    tensorboard = os.environ.get(TENSORBOARD) or None
    if tensorboard and rank is not None:
        tensorboard = os.path.join(tensorboard, f"rank{rank}")
    try:
        config = GuardConfig.build(
            select=os.environ.get(SELECT) or None,
            ignore=os.environ.get(IGNORE) or None,
            strict=os.environ.get(STRICT) == "1",
            echo=os.environ.get(ECHO, "1") == "1",
            rank=rank,
            stream_path=stream,
            thresholds=json.loads(os.environ.get(THRESHOLDS) or "{}"),
            metrics_path=os.path.join(session_dir, f"metrics-{os.getpid()}.jsonl") if os.environ.get(METRICS) == "1" else None,
            tensorboard_dir=tensorboard,
        )
        install(config)
    except Exception as error:  # the user's run goes on unguarded rather than not at all
        sys.stderr.write(f"trainguard: could not start the guard ({error}); the run continues unguarded\n")
        return
    _mark(GUARDED_MARKER)
    atexit.register(unwatch)
    previous_hook = sys.excepthook

    def excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if isinstance(error, GuardStop):
            finding = error.finding
            sys.stderr.write(
                f"trainguard: stopped the run (--strict) at {finding.path}:{finding.line}: "
                f"{finding.code} {finding.rule}\n"
            )
            return
        previous_hook(kind, error, tb)

    sys.excepthook = excepthook
