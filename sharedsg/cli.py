"""The ``sharedsg`` command: run | sweep | attach | status | stop | bench | data | report.

User mistakes (:class:`sharedsg.errors.UserError`) print one line and exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, List, Optional

from sharedsg.errors import UserError

# Subcommand modules; each has add_parser(subparsers) that sets ``func(args) -> int``.
COMMAND_MODULES = (
    "sharedsg.commands.run",
    "sharedsg.commands.cluster",
    "sharedsg.commands.bench",
    "sharedsg.commands.data",
    "sharedsg.commands.sweep",
    "sharedsg.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sharedsg",
        description="Neural Memory Networks with synthetic-gradient controllers, shared across streams on Ray.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in COMMAND_MODULES:  # a missing module is a broken installation: its ImportError propagates
        importlib.import_module(mod).add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (``run CONFIG --local a=1``)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args) or 0)
    except UserError as exc:  # ConfigError, DataError and the rest: one line, exit 2
        print(f"sharedsg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sharedsg: interrupted; what was written is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
