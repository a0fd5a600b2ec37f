"""``sharedsg report RUN_DIR [--out FILE.md]``: markdown tables from the run's ``results.json`` files.

The tables of docs/results/ come from this command. A missing or empty folder, or a damaged
``results.json``, is one line and exit 2 (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sharedsg.errors import UserError
from sharedsg.experiments.report import report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="markdown tables from every results.json under a run folder")
    p.add_argument("run_dir", help="a run folder or any folder above it, e.g. runs/knowledge_sharing/<run> or runs")
    p.add_argument("--out", default=None, help="write the report to this markdown file instead of printing it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = report(Path(args.run_dir))
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"report: --out {out}: folder {out.parent} does not exist; create it or name another file")
    if out.is_dir():
        raise UserError(f"report: --out {out} is a folder; name a file, e.g. {out / 'results.md'}")
    out.write_text(text)
    print(f"report: {out}", file=sys.stderr)
    return 0
