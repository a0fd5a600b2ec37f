"""``sharedsg run CONFIG [key=value ...] [--local | --address ADDR]``."""

from __future__ import annotations

import argparse
import json
import sys

from sharedsg.config import load_config
from sharedsg.experiments.backend import LocalBackend
from sharedsg.experiments.registry import get_runner
from sharedsg.experiments.runlog import RunLog, run_path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an experiment (in one process with --local, else on Ray)")
    p.add_argument("config", help="YAML config file, e.g. configs/knowledge_sharing.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. experiment.iterations=50")
    p.add_argument("--local", action="store_true", help="run in this process without Ray (the reference)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    runner = get_runner(cfg.experiment.kind)
    log = RunLog(run_path(cfg))
    if args.local:
        backend = LocalBackend(cfg)
    else:
        from sharedsg.runtime.job import ray_backend  # only the runtime imports ray

        backend = ray_backend(cfg, log, address=args.address)
    try:
        results = runner(cfg, backend, log)
    finally:
        log.close()
        backend.close()
    print(json.dumps(_summary(results), indent=2))
    print(f"run directory: {log.path}", file=sys.stderr)
    return 0


def _summary(results: dict) -> dict:
    """results.json without the long curves, for the terminal."""
    out = {k: v for k, v in results.items() if k != "streams"}
    streams = results.get("streams", {})
    out["streams"] = {n: {k: v for k, v in s.items() if k != "curve"} for n, s in streams.items()}
    return out
