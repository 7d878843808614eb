"""Reading and parsing a file without ever raising: bytes in, a syntax tree or one clear reason out."""

from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

# Lines of IPython magic (`%matplotlib inline`, `!pip install x`) left in notebooks exported to .py.
_MAGIC_LINE = re.compile(r"(?m)^([ \t]*)([%!])")
# The files parsed last, by their identity on disk (an edited file is parsed anew): a module that a
# linted script imports is linted itself too (parsing is about half of what lint spends on library
# code). Syntax trees are never changed, so one may be shared. A tree is held weakly: shared while
# something still uses it (the file being linted, a sibling module's index), parsed anew otherwise.
# Holding the last 64 trees alive cost more than it saved: fresh memory for every parse, and one
# long garbage collection over them after the run (about 0.2 s over torch's 500 files).
_RECENT: OrderedDict[tuple[Path, int, int], tuple[str, weakref.ref[ast.Module]]] = OrderedDict()
RECENT_PARSES = 64


@dataclass(frozen=True)
class ParsedFile:
    """A file that parsed: its text and syntax tree."""

    path: str
    source: str
    tree: ast.Module


@dataclass(frozen=True)
class ParseFailure:
    """Why a file could not be linted; reported once, apart from findings."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict:
        """The failure as the report's `errors` entries show it."""
        return {"path": self.path, "line": self.line, "column": self.column, "message": self.message}


def read_source(path: Path, display: str, max_bytes: int) -> ParsedFile | ParseFailure:
    """Read and parse one file; any problem becomes a `ParseFailure` with a one-sentence message."""
    try:
        status = path.stat()
        if status.st_size > max_bytes:
            return ParseFailure(display, f"file is larger than {max_bytes // 1024} KB (raise max-file-size-kb to lint it)")
        key = (path, status.st_mtime_ns, status.st_size)
        if key in _RECENT:
            source, tree = _RECENT[key][0], _RECENT[key][1]()
            if tree is not None:
                _RECENT.move_to_end(key)
                return ParsedFile(display, source, tree)
            del _RECENT[key]
        data = path.read_bytes()
    except OSError as error:
        return ParseFailure(display, f"cannot read the file: {error.strerror or error}")
    parsed = parse_bytes(data, display)
    if isinstance(parsed, ParsedFile):
        _RECENT[key] = (parsed.source, weakref.ref(parsed.tree))
        if len(_RECENT) > RECENT_PARSES:
            _RECENT.popitem(last=False)
    return parsed


def parse_bytes(data: bytes, display: str) -> ParsedFile | ParseFailure:
    """Decode as Python does (BOM, coding cookie, UTF-8 default) and parse."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        source = data.decode(encoding)
    except SyntaxError as error:
        return ParseFailure(display, f"cannot decode the file: {error.msg if hasattr(error, 'msg') else error}")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return ParseFailure(display, f"cannot decode the file as {error.encoding}: invalid byte 0x{data[error.start]:02x}", line)
    except LookupError as error:
        return ParseFailure(display, f"cannot decode the file: {error}")
    result = _parse(source, display)
    if isinstance(result, ParseFailure) and _MAGIC_LINE.search(source):
        # A notebook exported to .py: lint it with its magic lines commented out (same line numbers).
        retried = _parse(_MAGIC_LINE.sub(r"\1#\2", source), display)
        if isinstance(retried, ParsedFile):
            return ParsedFile(display, source, retried.tree)
    return result


def _parse(source: str, display: str) -> ParsedFile | ParseFailure:
    nul = source.find("\x00")
    if nul >= 0:  # Python versions disagree on how they refuse it; say it one way
        return ParseFailure(display, "the file contains NUL bytes", source.count("\n", 0, nul) + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings (invalid escapes) are not ours to report
            tree = ast.parse(source, filename=display)
    except SyntaxError as error:
        hint = " (Python 2 code?)" if error.msg and "Missing parentheses" in error.msg else ""
        return ParseFailure(display, f"syntax error: {error.msg}{hint}", error.lineno, error.offset)
    except (ValueError, MemoryError, RecursionError) as error:
        return ParseFailure(display, f"the file is too complex to parse ({type(error).__name__})")
    return ParsedFile(display, source, tree)
