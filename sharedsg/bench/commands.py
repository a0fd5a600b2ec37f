"""``sharedsg bench learner|data|runtime [--json]``: benchmarks that print numbers."""

from __future__ import annotations

import argparse
import importlib
import json

# name -> (module, add_arguments, run function)
BENCHES = {
    "learner": ("sharedsg.bench.learner", "run_learner_bench"),
    "data": ("sharedsg.bench.data", "run_data_bench"),
    "runtime": ("sharedsg.runtime.bench", "run_runtime_bench"),  # imports ray: lives in runtime/
    "server": ("sharedsg.runtime.bench_server", "run_server_bench"),
    "soak": ("sharedsg.runtime.bench_soak", "run_soak_bench"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (print numbers; --json for one JSON object)")
    bsub = p.add_subparsers(dest="bench", metavar="BENCH")
    bsub.required = True
    for name, (mod, fn) in BENCHES.items():
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:
                continue
            raise
        bp = bsub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        bp.add_argument("--json", action="store_true", help="print one JSON object")
        module.add_arguments(bp)
        bp.set_defaults(func=_runner(getattr(module, fn)))


def _runner(fn):
    def run(args: argparse.Namespace) -> int:
        result = fn(args)
        if args.json:
            print(json.dumps(result))
        else:
            for k, v in result.items():
                print(f"{k:>28}: {v}")
        return 0
    return run
