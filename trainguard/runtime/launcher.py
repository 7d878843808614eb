"""`trainguard run`: start the user's command with the guard armed in it, then merge the
findings of every guarded process (every torchrun rank) into one report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from trainguard.findings import Finding
from trainguard.reports.html import read_metrics
from trainguard.runtime import bootstrap

_BOOTSTRAP_DIR = str(Path(bootstrap.__file__).parent)
_PYTHON_NAMES = ("python", "python3")


class CommandError(ValueError):
    """The command to run is unusable (missing, not found); the message says why."""


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    torchrun: bool


def plan(command: Sequence[str]) -> Launch:
    """Validate COMMAND and decide how to start it. `SCRIPT.py ARGS` means `python SCRIPT.py ARGS`."""
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise CommandError("nothing to run: give a command, e.g. `trainguard run -- python train.py`")
    if argv[0].endswith(".py"):
        argv = [sys.executable, *argv]
    program = os.path.basename(argv[0])
    if shutil.which(argv[0]) is None:
        raise CommandError(f"command not found: {argv[0]}")
    is_python = program.startswith(_PYTHON_NAMES)
    torchrun = program == "torchrun" or (is_python and argv[1:3] == ["-m", "torch.distributed.run"])
    if is_python and not torchrun:
        script = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
        uses_flag = any(arg in ("-m", "-c") for arg in argv[1:])
        if script is not None and not uses_flag and not Path(script).is_file():
            raise CommandError(f"script not found: {script}")
    return Launch(argv, torchrun)


@dataclass(frozen=True)
class GuardOptions:
    """What the launcher passes to the guard in each process."""

    select: str | None = None
    ignore: str | None = None
    strict: bool = False
    echo: bool = True
    thresholds: dict[str, str] = field(default_factory=dict)
    metrics: bool = False
    tensorboard_dir: str | None = None


def guarded_environment(session_dir: str, launch: Launch, options: GuardOptions) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(bootstrap.OWNER, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_BOOTSTRAP_DIR, env.get("PYTHONPATH")]))
    env[bootstrap.SESSION_DIR] = session_dir
    env[bootstrap.LAUNCHER] = "torchrun" if launch.torchrun else "python"
    env[bootstrap.SELECT] = options.select or ""
    env[bootstrap.IGNORE] = options.ignore or ""
    env[bootstrap.STRICT] = "1" if options.strict else "0"
    # Under torchrun every rank sees the same bugs: the launcher echoes each finding once for the
    # job (see LiveEcho) instead of every rank printing its own copy.
    env[bootstrap.ECHO] = "1" if options.echo and not launch.torchrun else "0"
    env[bootstrap.THRESHOLDS] = json.dumps(options.thresholds)
    env[bootstrap.METRICS] = "1" if options.metrics else "0"
    env[bootstrap.TENSORBOARD] = os.path.abspath(options.tensorboard_dir) if options.tensorboard_dir else ""
    return env


@dataclass
class RunResult:
    """What the guarded command left: its exit status, the merged findings, and how many of its
    processes were armed (a Python process that `trainguard run` reached) and guarded (armed and
    imported torch, so the guard was installed). `guarded == 0` means nothing was observed."""

    returncode: int
    findings: list[Finding]
    internal_errors: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    armed: int = 0
    guarded: int = 0


def run(launch: Launch, options: GuardOptions | None = None, stdout_to_stderr: bool = False) -> RunResult:
    """Run the command to completion (forwarding SIGINT/SIGTERM) and collect its findings.
    `stdout_to_stderr` sends the command's own standard output to our stderr, so that our stdout
    carries nothing but what trainguard prints (the JSON report of `--format json`)."""
    options = options or GuardOptions()
    with tempfile.TemporaryDirectory(prefix="trainguard-") as session_dir:
        env = guarded_environment(session_dir, launch, options)
        echo = LiveEcho(Path(session_dir)) if options.echo and launch.torchrun else None
        process = subprocess.Popen(launch.argv, env=env, stdout=2 if stdout_to_stderr else None)
        forwarded = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in forwarded:
            signal.signal(sig, lambda number, frame: process.send_signal(number))
        if echo is not None:
            echo.start()
        try:
            returncode = process.wait()
        finally:
            for sig, handler in forwarded.items():
                signal.signal(sig, handler)
            if echo is not None:
                echo.stop()
        findings, errors = read_session(Path(session_dir))
        metrics = [record for path in sorted(Path(session_dir).glob("metrics-*.jsonl")) for record in read_metrics(path)]
        armed = len(list(Path(session_dir).glob(bootstrap.ARMED_MARKER + "*")))
        guarded = len(list(Path(session_dir).glob(bootstrap.GUARDED_MARKER + "*")))
    if returncode < 0:  # killed by a signal: report it the way a shell does
        returncode = 128 - returncode
    return RunResult(returncode, findings, errors, metrics, armed, guarded)


class LiveEcho:
    """Prints each finding of a multi-process job once, as the ranks' streams receive it: the
    first rank to report a place (rule, file, line) is shown; the same finding from the other
    ranks is not repeated (the summary at the end lists the ranks)."""

    POLL_SECONDS = 0.2

    def __init__(self, session_dir: Path) -> None:
        self._session_dir = session_dir
        self._offsets: dict[Path, int] = {}
        self._shown: set[tuple] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trainguard-live-echo", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and print what arrived since the last poll."""
        self._stopped.set()
        self._thread.join()
        self._poll()

    def _loop(self) -> None:
        while not self._stopped.wait(self.POLL_SECONDS):
            self._poll()

    def _poll(self) -> None:
        from trainguard.console import format_finding, make_console

        console = make_console(sys.stderr)
        for stream in sorted(self._session_dir.glob("findings-*.jsonl")):
            for record in self._new_records(stream):
                if "internal_error" in record:
                    continue  # the rank printed it itself
                finding = Finding.from_dict(record)
                place = (finding.code, finding.path, finding.line)
                if place in self._shown:
                    continue
                self._shown.add(place)
                prefix = "trainguard" if finding.rank is None else f"trainguard[rank {finding.rank}]"
                console.print(f"[bold magenta]{prefix}:[/] ", end="")
                console.print(format_finding(finding), end="")

    def _new_records(self, stream: Path) -> list[dict[str, Any]]:
        """Complete lines written since the last poll (a line still being written waits)."""
        with open(stream, "rb") as handle:
            handle.seek(self._offsets.get(stream, 0))
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offsets[stream] = self._offsets.get(stream, 0) + len(complete)
        records = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records


def read_session(session_dir: Path) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Merge the findings streams of all guarded processes; the last record of a finding wins
    (it carries the final count). A torn last line (a process killed mid-write) is skipped."""
    latest: dict[tuple, Finding] = {}
    errors: list[dict[str, Any]] = []
    for stream in sorted(session_dir.glob("findings-*.jsonl")):
        for line in stream.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "internal_error" in record:
                errors.append(record)
            else:
                finding = Finding.from_dict(record)
                latest[finding.key] = finding
    return merge_ranks(latest.values()), errors


def merge_ranks(findings: Iterable[Finding]) -> list[Finding]:
    """The same finding on several ranks is one finding: the lowest rank's, with `ranks` listed."""
    by_place: dict[tuple, list[Finding]] = {}
    for finding in findings:
        by_place.setdefault((finding.code, finding.path, finding.line), []).append(finding)
    merged = []
    for group in by_place.values():
        group.sort(key=lambda f: -1 if f.rank is None else f.rank)
        first = group[0]
        if len(group) > 1:
            first.evidence["ranks"] = [f.rank for f in group]
        merged.append(first)
    return merged
