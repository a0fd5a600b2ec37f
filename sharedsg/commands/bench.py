"""``sharedsg bench learner|data|nmn-synthetic|runtime|server|soak|sg-fit [--json]``: benchmarks that print numbers."""

from __future__ import annotations

import argparse
import importlib
import json

from sharedsg.commands import bench_options as options

# name -> (help, its options, the module that runs it, its run function); the module is imported
# only when that benchmark runs (the learner's imports torch, the runtime ones ray)
BENCHES = {
    "learner": ("steps/s of the learners, model.impl reference vs fast side by side",
                options.learner, "sharedsg.bench.learner", "run_learner_bench"),
    "data": ("Omniglot cold/warm load and N-way K-shot episodes per second",
             options.data, "sharedsg.bench.data", "run_data_bench"),
    "nmn-synthetic": ("the few-shot NMN on synthetic 576-d features: when each IC/OC form leaves chance",
                      options.nmn_synthetic, "sharedsg.bench.nmn_synthetic", "run_nmn_synthetic_bench"),
    "runtime": ("one process vs Ray replica vs Ray rpc, 1, 2 and 4 streams",
                options.runtime, "sharedsg.bench.runtime", "run_runtime_bench"),
    "server": ("SG service capacity: N pushers against the server and a no-op sink",
               options.server, "sharedsg.bench.server", "run_server_bench"),
    "sg-fit": ("held-out fit of the SG predictors to recorded true gradients, settings compared",
               options.sg_fit, "sharedsg.bench.sgfit", "run_sg_fit_bench"),
    "soak": ("N streams for minutes, the SG group actor killed twice and one stream once",
             options.soak, "sharedsg.bench.soak", "run_soak_bench"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (print numbers; --json for one JSON object)")
    bsub = p.add_subparsers(dest="bench", metavar="BENCH")
    bsub.required = True
    for name, (text, add_options, mod, fn) in BENCHES.items():
        bp = bsub.add_parser(name, help=text)
        bp.add_argument("--json", action="store_true", help="print one JSON object")
        add_options(bp)
        bp.set_defaults(func=_runner(mod, fn))


def _runner(mod: str, fn: str):
    def run(args: argparse.Namespace) -> int:
        result = getattr(importlib.import_module(mod), fn)(args)
        if args.json:
            print(json.dumps(result))
        else:
            for k, v in result.items():
                print(f"{k:>28}: {v}")
        return 0
    return run
