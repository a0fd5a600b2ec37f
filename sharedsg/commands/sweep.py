"""``sharedsg sweep CONFIG... [key=value ...] [--local] [--name NAME] [--address ADDR]``.

Runs every job (Omniglot setting x method, or MNIST method) of the configs as its own Ray
actor in parallel; running the same command again resumes from the jobs' checkpoints.
``--local`` runs the jobs one after another in this process instead (no Ray).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sharedsg.config import load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run classification jobs (settings x methods) as parallel Ray actors, resumable")
    p.add_argument("configs", nargs="+", help="YAML configs (e.g. configs/omniglot/*.yaml), then key=value overrides")
    p.add_argument("--local", action="store_true", help="run the jobs one after another in this process (no Ray)")
    p.add_argument("--name", default=None, help="sweep name (run directory runs/<name>/<run_name or main>)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray started without --address")
    p.set_defaults(func=run, overrides=[])


def _split(items):
    files = [i for i in items if "=" not in i]
    overrides = [i for i in items if "=" in i]
    return files, overrides


def run(args: argparse.Namespace) -> int:
    files, overrides = _split(list(args.configs) + list(args.overrides))
    cfgs = [load_config(f, overrides) for f in files]
    if not cfgs:
        from sharedsg.config import ConfigError

        raise ConfigError("sweep needs at least one config file, e.g. configs/omniglot/5w1s.yaml")
    t0 = time.perf_counter()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.local:
        results = _run_local(cfgs, args.name, log)
    else:
        from sharedsg.runtime.sweep import run_sweep  # only the runtime imports ray

        results = run_sweep(cfgs, name=args.name, address=args.address, num_cpus=args.num_cpus, log=log)
    summary = {k: v for k, v in results.items() if k != "configs"}
    print(json.dumps(summary, indent=2))
    print(f"run directory: {results['path']} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


def _run_local(cfgs, name, log) -> dict:
    """The same jobs, directories and results.json as the Ray sweep, one after another here."""
    from pathlib import Path

    import torch
    from omegaconf import OmegaConf

    from sharedsg.experiments.omniglot import log_job, strip_scalars
    from sharedsg.harness.runlog import RunLog, write_json_atomic
    from sharedsg.experiments.mnist_rare import RareJob, rare_jobs
    from sharedsg.experiments.omniglot import FewShotJob, fewshot_jobs

    kinds = {"fewshot": (fewshot_jobs, FewShotJob), "mnist_rare": (rare_jobs, RareJob)}
    first = cfgs[0].experiment
    path = Path(first.run_dir) / (name or (first.name if len(cfgs) == 1 else "sweep")) / (first.run_name or "main")
    runlog = RunLog(path)
    results = {"sweep": path.parent.name, "run": path.name, "path": str(path), "jobs": {},
               "configs": [OmegaConf.to_container(c, resolve=True) for c in cfgs]}
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    rare = {}
    try:
        for cfg in cfgs:
            if cfg.experiment.kind not in kinds:
                from sharedsg.errors import UserError

                raise UserError(f"experiment.kind: '{cfg.experiment.kind}' cannot be swept; use fewshot or mnist_rare")
            names, job_cls = kinds[cfg.experiment.kind]
            for job in names(cfg):
                res = job_cls(cfg, job).run(path / job, progress=log)
                log_job(runlog, job, res)
                results["jobs"][job] = strip_scalars(res)
                results["wall_time_s"] = time.perf_counter() - t0
                write_json_atomic(path / "results.json", results)
                if cfg.experiment.kind == "mnist_rare":
                    rare[job] = path / job
        if rare:
            from sharedsg.experiments.plots_classification import rare_figures

            results["figures"] = rare_figures(path, rare)
            write_json_atomic(path / "results.json", results)
    finally:
        runlog.close()
    return results
