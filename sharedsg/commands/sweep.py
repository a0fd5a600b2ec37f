"""``sharedsg sweep CONFIG... [key=value ...] [--local] [--name NAME] [--address ADDR]``.

Runs every job (Omniglot setting x method, or MNIST method) of the configs as its own Ray
actor in parallel; running the same command again resumes from the jobs' checkpoints.
``--local`` runs the jobs one after another in this process instead (no Ray).

Before any job starts (or anything is written) the driver loads each config's dataset, so a
missing or damaged one is one line and exit 2, on Ray as with ``--local``; only a sweep on a
cluster (``--address`` or ``RAY_ADDRESS``) leaves that to its jobs, whose nodes may hold the data
where this machine does not (their error is one line too).
``sharedsg run CONFIG`` of a job kind is the same as ``sharedsg sweep CONFIG``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional

from omegaconf import DictConfig

from sharedsg.config import ConfigError, check_device, load_config
from sharedsg.configcheck import FOLDER_NAME_HINT, is_folder_name


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run classification jobs (settings x methods) as parallel Ray actors, resumable")
    p.add_argument("configs", nargs="+", help="YAML configs (e.g. configs/omniglot/*.yaml), then key=value overrides")
    p.add_argument("--local", action="store_true", help="run the jobs one after another in this process (no Ray)")
    p.add_argument("--name", default=None, help="sweep name (run directory runs/<name>/<run_name or main>)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray started without --address")
    p.set_defaults(func=run, overrides=[])


def run_plan(cfgs: List[DictConfig], name: Optional[str] = None, local: bool = False,
             address: Optional[str] = None, num_cpus: int = 2,
             log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> Dict[str, object]:
    """The jobs of ``cfgs`` in this process (``local``) or as Ray actors; the sweep's results."""
    from sharedsg.experiments.registry import finish_plan, job_plan  # torch: when jobs run, not with the parser
    from sharedsg.harness.jobs import run_jobs, sweep_path

    specs = job_plan(cfgs)
    path = sweep_path(cfgs, name)
    if local:
        for cfg in cfgs:
            check_device(cfg.learner.device)  # the jobs compute on learner.device
    if local or not (address or os.environ.get("RAY_ADDRESS")):
        from sharedsg.data.sources import check_data

        for cfg in cfgs:
            check_data(cfg.data)
    if local:
        return run_jobs(specs, path, log=log, finish=finish_plan)
    from sharedsg.runtime.sweep import run_sweep  # only the runtime imports ray

    return run_sweep(specs, path, address=address, num_cpus=num_cpus, log=log, finish=finish_plan)


def run(args: argparse.Namespace) -> int:
    items = list(args.configs) + list(args.overrides)
    files = [i for i in items if "=" not in i]
    overrides = [i for i in items if "=" in i]
    if not files:
        raise ConfigError("sweep needs at least one config file, e.g. configs/omniglot/5w1s.yaml")
    if args.name is not None and not is_folder_name(args.name):
        raise ConfigError(f"--name: '{args.name}' must be {FOLDER_NAME_HINT} (it names the sweep's folder in experiment.storage)")
    cfgs = [load_config(f, overrides) for f in files]
    t0 = time.perf_counter()
    results = run_plan(cfgs, args.name, args.local, args.address, args.num_cpus)
    print(json.dumps({k: v for k, v in results.items() if k != "configs"}, indent=2))
    print(f"run directory: {results['path']} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0
