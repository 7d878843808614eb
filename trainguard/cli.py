"""The `trainguard` command. Each verb lives in its face's `command` module, which adds its
sub-parser and sets `handler`; this module only wires them together and maps errors to exit 2."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from typing import NoReturn, Sequence

from trainguard import __version__
from trainguard.output_paths import OutputPathError

# Each module defines `add_parser(subparsers)`; the parser it adds sets `handler(args) -> int`.
# Keyed by the verb it adds: a command line naming its verb first imports only that module (the
# others pull in rich, markdown and torch helpers: start-up time counts against lint's speed).
VERB_MODULES = {
    "run": "trainguard.runtime.command",
    "rules": "trainguard.rules_command",
    "demo": "trainguard.demo.command",
    "report": "trainguard.reports.command",
    "doctor": "trainguard.doctor.command",
    "lint": "trainguard.lint.command",
    "train": "trainguard.pipeline.command",
}


class UsageError(Exception):
    """A mistake on the command line or in the user's input: printed as one sentence, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's default prints usage and exits 2 too
        self.print_usage(sys.stderr)
        sys.stderr.write(f"trainguard: error: {message}\n")
        raise SystemExit(2)


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or only `verb`'s sub-parser when it is a known verb."""
    parser = _Parser(prog="trainguard", description="Catches the silent failures of PyTorch training.")
    parser.add_argument("--version", action="version", version=f"trainguard {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=_Parser)
    for name in [VERB_MODULES[verb]] if verb in VERB_MODULES else VERB_MODULES.values():
        import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    if args.verb is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except (UsageError, OutputPathError) as error:
        sys.stderr.write(f"trainguard {args.verb}: {error}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
