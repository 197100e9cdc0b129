"""The `rlvr` command: parses arguments, sets up logging, and hands over to the library.

Each subcommand lives in its own small module under `oneshot_rlvr.commands` exposing
`HELP` (one line), `add_arguments(parser)` and `run(args) -> int`. Those modules import
heavy dependencies (torch, transformers) inside `run`, so `rlvr --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from oneshot_rlvr import __version__
from oneshot_rlvr.errors import RlvrError

# (subcommand, module) in the order `rlvr --help` lists them.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("demo", "oneshot_rlvr.commands.demo"),
    ("train", "oneshot_rlvr.commands.train"),
    ("eval", "oneshot_rlvr.commands.eval"),
    ("serve", "oneshot_rlvr.commands.serve"),
    ("select", "oneshot_rlvr.commands.select"),
    ("export", "oneshot_rlvr.commands.export"),
    ("world", "oneshot_rlvr.commands.world"),
    ("grade", "oneshot_rlvr.commands.grade"),
    ("report", "oneshot_rlvr.commands.report"),
)


# An option name: -x, --name, --name-with-dashes. Anything else starting with "-" is a value (-\frac{1}{2}, -3, -(x)).
_OPTION_NAME = re.compile(r"--?[A-Za-z][A-Za-z0-9_-]*(=.*)?", re.DOTALL)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: `rlvr: error: ...` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        if "expected one argument" in message:
            message += " (a value that starts with '-' also goes as --option=VALUE)"
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def _parse_optional(self, arg_string: str) -> Any:
        # argparse takes every word that starts with "-" for an option unless it looks like a number, so
        # `--gold -\frac{1}{2}` was "expected one argument"; words that cannot be option names are values.
        if arg_string.startswith("-") and arg_string != "--" and not _OPTION_NAME.fullmatch(arg_string):
            return None
        return super()._parse_optional(arg_string)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rlvr",
        description="Reinforcement learning from verifiable rewards on one (or a few) training examples.",
    )
    parser.add_argument("--version", action="version", version=f"oneshot-rlvr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in COMMANDS:
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        cmd.prog = f"rlvr {name}"
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; KEY=VALUE settings may come anywhere, also after options (`--out DIR steps=5`).

    argparse gives a positional list only its first run of words, so settings after an option would be
    refused as unrecognised: they join the others, in order, for the commands that take settings."""
    args, extra = parser.parse_known_args(argv)
    settings = getattr(args, "settings", None)
    if extra and settings is not None and all("=" in word and not word.startswith("-") for word in extra):
        args.settings = [*settings, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    name = f"rlvr {args.command}"
    try:
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # here, so that a closed pipe is caught below rather than at exit
        return code
    except RlvrError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"{name}: interrupted" + (f"; {err}" if str(err) else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`rlvr grade ... | head -1`): nothing left to say to it.
        _silence_stdout()
        return 1
    except Exception as err:  # a bug or an environment problem: one line, the traceback with -v
        if args.verbose:
            raise
        print(f"{name}: error: {type(err).__name__}: {err} (run `rlvr -v {args.command} ...` for the traceback)",
              file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (captured in tests)
        pass


if __name__ == "__main__":
    raise SystemExit(main())
