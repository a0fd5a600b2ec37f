"""``sharedsg run CONFIG [key=value ...] [--local | --address ADDR]``."""

from __future__ import annotations

import argparse
import json
import os

from sharedsg import storage
from sharedsg.commands.sweep import run_plan
from sharedsg.config import check_device, load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an experiment (in one process with --local, else on Ray)")
    p.add_argument("config", help="YAML config file, e.g. configs/knowledge_sharing.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. experiment.iterations=50")
    p.add_argument("--local", action="store_true", help="run in this process without Ray (the reference)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # torch, the experiments and TensorBoard load when a run starts, not with the CLI's parser
    import torch

    from sharedsg.experiments.registry import get_kind
    from sharedsg.harness.launcher import local_launcher
    from sharedsg.harness.runlog import RunLog, run_path

    cfg = load_config(args.config, args.overrides)
    kind = get_kind(cfg.experiment.kind)
    if kind.runner is None:  # a job kind: exactly `sharedsg sweep CONFIG` (resumable jobs)
        results = run_plan([cfg], local=args.local, address=args.address)
        print(json.dumps({k: v for k, v in results.items() if k != "configs"}, indent=2))
        return 0
    if args.local:
        check_device(cfg.learner.device)  # the local backend trains on learner.device
    if args.local or not (args.address or os.environ.get("RAY_ADDRESS")):
        from sharedsg.data.sources import check_data

        check_data(cfg.data)  # a missing or damaged dataset: one line before anything starts or is written
    if args.local:
        # as many torch threads as a stream actor gets: small LSTMs gain little from more, and an
        # oversubscribed machine loses a lot (measured 35x slower steps with 2 threads under load)
        torch.set_num_threads(max(1, int(cfg.resources.cpus_per_stream)))
        launcher = local_launcher()
    else:
        from sharedsg.runtime.cluster.launcher import ray_launcher
        from sharedsg.runtime.cluster.connection import connect  # only the runtime imports ray

        if args.address or os.environ.get("RAY_ADDRESS"):
            connect(args.address, cfg)  # a wrong address fails before anything is written
        launcher = ray_launcher(args.address, cfg)
    log = RunLog(run_path(cfg))
    try:
        results = kind.runner(cfg, launcher, log)
    finally:
        log.close()
    print(kind.table(results) if kind.table else json.dumps(_summary(results), indent=2))
    print(f"results: {storage.join(log.location, 'results.json')}")
    logdir = log.path if storage.is_uri(log.location) else cfg.experiment.run_dir  # a URI: this machine's copy
    print(f"TensorBoard: tensorboard --logdir {logdir} --host 127.0.0.1")
    return 0


def _summary(results: dict) -> dict:
    """results.json without the long curves, for the terminal."""
    out = {k: v for k, v in results.items() if k != "streams"}
    streams = results.get("streams", {})
    out["streams"] = {n: {k: v for k, v in s.items() if k != "curve"} for n, s in streams.items()}
    return out
