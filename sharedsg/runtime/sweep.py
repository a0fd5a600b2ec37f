"""``sharedsg sweep``: the jobs of one or more classification configs as parallel Ray actors.

A job is one (setting, method) of ``experiment.kind=fewshot`` (Omniglot, Table 1) or one
method of ``experiment.kind=mnist_rare`` (Sec. 5.1). Each job runs in its own actor
(``resources.cpus_per_stream`` CPUs, one torch thread) on whatever the cluster has, owns its
model and its SG predictors (so settings with different N never share them), and checkpoints
its whole progress into ``<run>/<job>/checkpoint.pt`` (atomic, ``weights_only`` loadable).
Running the same command again resumes every job from its checkpoint; a crashed actor is
restarted by Ray and its task retried, which resumes the same way.

The driver collects each job's results as it finishes, writes its scalars to TensorBoard
under ``<run>/<job>/`` and keeps ``<run>/results.json`` up to date (the MNIST figures go
beside it). The run directory is ``<experiment.run_dir>/<name>/<experiment.run_name or main>``.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import ray
import torch
from omegaconf import DictConfig, OmegaConf

from sharedsg.config import Config
from sharedsg.errors import UserError
from sharedsg.harness.runlog import RunLog, write_json_atomic
from sharedsg.runtime.job import connect

#: experiment.kind -> (module, job-names function, job class)
JOB_KINDS: Dict[str, Tuple[str, str, str]] = {
    "fewshot": ("sharedsg.experiments.omniglot", "fewshot_jobs", "FewShotJob"),
    "mnist_rare": ("sharedsg.experiments.mnist_rare", "rare_jobs", "RareJob"),
}


def _kind(cfg: DictConfig) -> Tuple[Callable, Callable]:
    kind = str(cfg.experiment.kind)
    if kind not in JOB_KINDS:
        raise UserError(f"experiment.kind: '{kind}' cannot be swept; use one of {', '.join(JOB_KINDS)}")
    module, names, cls = JOB_KINDS[kind]
    mod = importlib.import_module(module)
    return getattr(mod, names), getattr(mod, cls)


def plan(cfgs: List[DictConfig]) -> List[Tuple[str, DictConfig]]:
    """(job name, its config) for every job of every config; names must be unique."""
    jobs: List[Tuple[str, DictConfig]] = []
    for cfg in cfgs:
        names, _ = _kind(cfg)
        for name in names(cfg):
            if any(name == n for n, _ in jobs):
                raise UserError(f"job '{name}' appears in two configs; give each config its own settings")
            jobs.append((name, cfg))
    return jobs


def run_job(cfg_yaml: str, name: str, directory: str) -> Dict[str, object]:
    """Run (or resume) one job in this process; used inside the actor."""
    torch.set_num_threads(1)
    # merged over the structured defaults, so keys added to config.py since the driver started exist
    cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(cfg_yaml))
    _, job_cls = _kind(cfg)
    job = job_cls(cfg, name)
    return job.run(Path(directory), progress=lambda msg: print(msg, flush=True))


@ray.remote(max_restarts=-1, max_task_retries=-1)
class JobActor:
    """One sweep job; ``torch.set_num_threads(1)`` so N actors use N cores."""

    def __init__(self) -> None:
        torch.set_num_threads(1)

    def run(self, cfg_yaml: str, name: str, directory: str) -> Dict[str, object]:
        return run_job(cfg_yaml, name, directory)


def sweep_path(cfgs: List[DictConfig], name: Optional[str]) -> Path:
    first = cfgs[0].experiment
    sweep_name = name or (first.name if len(cfgs) == 1 else "sweep")
    return Path(first.run_dir) / sweep_name / (first.run_name or "main")


def run_sweep(cfgs: List[DictConfig], name: Optional[str] = None, address: Optional[str] = None,
              num_cpus: int = 2, log=print) -> Dict[str, object]:
    """Run every job of ``cfgs`` as its own actor; returns (and writes) the results."""
    jobs = plan(cfgs)
    path = sweep_path(cfgs, name)
    started_ray = not ray.is_initialized()
    connect(address, cfgs[0], num_cpus=num_cpus)  # a wrong address fails before anything is written
    runlog = RunLog(path)
    started = time.perf_counter()
    results: Dict[str, object] = {"sweep": path.parent.name, "run": path.name, "path": str(path), "jobs": {},
                                  "configs": [OmegaConf.to_container(c, resolve=True) for c in cfgs]}
    try:
        pending: Dict[object, str] = {}
        actors = {}
        for job, cfg in jobs:
            runlog.config(job, cfg)
            actor = JobActor.options(num_cpus=float(cfg.resources.cpus_per_stream)).remote()
            actors[job] = actor
            ref = actor.run.remote(OmegaConf.to_yaml(cfg, resolve=True), job, str(path / job))
            pending[ref] = job
        log(f"sweep: {len(jobs)} jobs on {ray.cluster_resources().get('CPU', 0):g} CPUs, run directory {path}")
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            res = ray.get(done[0])
            from sharedsg.experiments.omniglot import log_job, strip_scalars

            log_job(runlog, job, res)
            results["jobs"][job] = strip_scalars(res)
            results["wall_time_s"] = time.perf_counter() - started
            write_json_atomic(path / "results.json", results)
            log(f"sweep: {job} done ({len(results['jobs'])}/{len(jobs)})")
            ray.kill(actors.pop(job))
        rare = {j: path / j for j, c in jobs if c.experiment.kind == "mnist_rare"}
        if rare:
            from sharedsg.experiments.plots_classification import rare_figures

            results["figures"] = rare_figures(path, rare)
        results["wall_time_s"] = time.perf_counter() - started
        write_json_atomic(path / "results.json", results)
    finally:
        runlog.close()
        if started_ray:
            ray.shutdown()
    return results
