"""The ``sescratch`` command: one sub-command per job, each defined next to the code it runs.

Each module listed in ``COMMAND_MODULES`` provides ``add_commands(subparsers)``, which adds its
sub-parsers and sets ``func`` (called with the parsed arguments, returning an exit status).
Errors meant for people (``SescratchError``, ``ValueError``) are printed without a traceback:
usage mistakes exit with status 2, Ctrl-C with 130. :func:`int_list` and
:func:`parse_key_values` read the option values the sub-commands share.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from sescratch.errors import DataError, SescratchError, UsageError

COMMAND_MODULES = (
    "sescratch.train.cli",
    "sescratch.summary",
    "sescratch.analysis.cli",
    "sescratch.interop.cli",
)


def int_list(text: str) -> tuple[int, ...]:
    """An argparse ``type``: ``"50,75"`` -> ``(50, 75)``; at least one integer."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def parse_key_values(items, option: str) -> dict:
    """``["width=8", "placement=pre"]`` -> ``{"width": 8, "placement": "pre"}``.

    Values are read as JSON where they parse (numbers, true/false, lists), else kept as strings.
    A malformed item raises :class:`UsageError` naming ``option`` (e.g. ``"--model-option"``).
    """
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option}: expected KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(value.strip())
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sescratch",
        description="Squeeze-and-Excitation networks from scratch: train, evaluate, inspect.",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def _version() -> str:
    from sescratch import __version__

    return f"sescratch {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"sescratch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (DataError, SescratchError, ValueError, FileNotFoundError) as exc:
        print(f"sescratch {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sescratch {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the command could not read or write (a directory, a full disk)
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"sescratch {args.command}: error:{where} {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
