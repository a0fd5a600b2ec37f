"""``sharedsg data check | build-sample | download | prepare``.

* ``check [--root DIR] [--json]``: datasets found under DIR, counts and checksum status.
* ``build-sample --sdd DIR [--out PATH]``: rebuild the shipped SDD sample, byte for byte.
* ``download {omniglot,mnist} [--root DIR] [--url URL] [--force]``: fetch and check a dataset.
* ``prepare [--root DIR] [--cache DIR]``: build the Omniglot 28x28 cache (Sec. 4.1) once.

Exit status: 0 when nothing checked is damaged (absent datasets, or no data root at all,
included), 1 when ``check`` found a damaged dataset, 2 on a user error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional

from sharedsg.config import DataConfig, cache_dir, data_root
from sharedsg.data.check import check_root, summary_lines
from sharedsg.data.download import DOWNLOADS, download
from sharedsg.data.errors import DataError
from sharedsg.data.omniglot import load_omniglot
from sharedsg.data.sample import SAMPLE_PATH, build_sample


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``data`` and its subcommands; sets ``func`` to :func:`run`."""
    parser = subparsers.add_parser("data", help="check, download and prepare datasets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    root_help = "data root (default: $SHAREDSG_DATA, else ~/.local/share/sharedsg or $XDG_DATA_HOME/sharedsg)"
    check = sub.add_parser("check", help="list every dataset under the data root: present (counts), absent (how to get it) or damaged")
    check.add_argument("--root", type=Path, default=None, help=root_help)
    check.add_argument("--json", action="store_true", help="print one JSON object")
    sample = sub.add_parser("build-sample", help="rebuild the shipped SDD sample from an SDD folder")
    sample.add_argument("--sdd", type=Path, required=True, help="folder with <scene>/<videoN>/annotations.txt and estimated_scales.yaml")
    sample.add_argument("--out", type=Path, default=SAMPLE_PATH, help=f"output npz (default: {SAMPLE_PATH})")
    fetch = sub.add_parser("download", help="download a dataset and check its files")
    fetch.add_argument("dataset", choices=sorted(DOWNLOADS))
    fetch.add_argument("--root", type=Path, default=None, help=root_help)
    fetch.add_argument("--url", default=None, help="base URL or folder (default: data.omniglot_url / data.mnist_url)")
    fetch.add_argument("--force", action="store_true", help="download again even if valid files are present")
    prepare = sub.add_parser("prepare", help="build the Omniglot 28x28 cache")
    prepare.add_argument("--root", type=Path, default=None, help=root_help)
    prepare.add_argument("--cache", type=Path, default=None, help="cache folder (default: $SHAREDSG_CACHE, else ~/.cache/sharedsg)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute one ``data`` subcommand; DataError propagates to the CLI (exit 2)."""
    action = args.data_command
    if action == "check":
        report = check_root(args.root or data_root())
        print(json.dumps(report) if args.json else "\n".join(summary_lines(report)))
        return 1 if any(e["status"] == "damaged" for e in report["datasets"].values()) else 0
    if action == "build-sample":
        out = build_sample(args.sdd, args.out)
        print(f"wrote {out} ({out.stat().st_size} bytes)")
        return 0
    if action == "download":
        defaults = DataConfig()
        base = args.url or {"omniglot": defaults.omniglot_url, "mnist": defaults.mnist_url}[args.dataset]
        for path in download(args.dataset, args.root or data_root(), base, force=args.force):
            print(f"ok {path}")
        return 0
    if action == "prepare":
        start = time.perf_counter()
        data = load_omniglot((args.root or data_root()) / "omniglot", args.cache or cache_dir())
        print(f"Omniglot cache ready: {data.num_images} images in {time.perf_counter() - start:.2f} s")
        return 0
    raise DataError(f"unknown data action '{action}'")


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m sharedsg.commands.data ...`` (the same as ``sharedsg data ...``)."""
    parser = argparse.ArgumentParser(prog="sharedsg")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except DataError as exc:
        print(f"sharedsg: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
