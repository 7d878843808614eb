"""What both trainers' tests check the same way: marked lines, captured log records, the report."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def line_of(source: str, marker: str) -> int:
    """The line of the file `source` that ends with the comment `# <marker>`."""
    lines = Path(source).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.rstrip().endswith(f"# <{marker}>"))


@contextmanager
def records_of(logger: logging.Logger) -> Iterator[list[logging.LogRecord]]:
    """The records `logger` handles inside the block, whatever handlers the framework set up."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def assert_one_error_logged_and_reported(
    records: list[logging.LogRecord], report_path: Path, code_and_slug: str, path: str, line: int
) -> None:
    """Exactly one finding, logged at ERROR level with its place, and in the JSON report."""
    [record] = records
    assert record.levelno == logging.ERROR
    assert f"{path}:{line} {code_and_slug}" in record.getMessage()
    report = json.loads(report_path.read_text())
    assert report["mode"] == "run" and report["summary"] == {"error": 1, "warning": 0, "info": 0}
    [finding] = report["findings"]
    assert (finding["code"], finding["path"], finding["line"], finding["step"]) == (code_and_slug.split()[0], path, line, 0)
