"""``sharedsg sweep`` on Ray: the jobs of a plan as parallel, resumable Ray actors.

A job (see :mod:`sharedsg.harness.jobs`) runs in its own actor (``resources.cpus_per_stream``
CPUs, one torch thread), owns its model (so settings with different N never share SG
predictors) and checkpoints its whole progress into ``<run>/<job>/checkpoint.pt``. Running
the same command again resumes every job from its checkpoint; a crashed actor is restarted by
Ray and its task retried, which resumes the same way. The driver collects each job's results
as it finishes (:class:`~sharedsg.harness.jobs.SweepResults`: TensorBoard under
``<run>/<job>/``, ``<run>/results.json``) and runs the plan's ``finish`` step at the end.

The job classes come with the plan (the experiment registry makes it), so this module never
imports the experiments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import ray
import torch
from omegaconf import OmegaConf

from sharedsg.harness.jobs import Finish, JobSpec, SweepResults
from sharedsg.runtime import with_defaults
from sharedsg.runtime.job import connect


@ray.remote(max_restarts=-1, max_task_retries=-1)
class JobActor:
    """One sweep job; ``torch.set_num_threads(1)`` so N actors use N cores."""

    def __init__(self) -> None:
        torch.set_num_threads(1)

    def run(self, job: type, cfg: Dict[str, Any], name: str, directory: str) -> Dict[str, object]:
        # merged over the structured defaults, so keys added to config.py since the driver started exist
        return job(with_defaults(cfg), name).run(Path(directory), progress=lambda msg: print(msg, flush=True))


def run_sweep(specs: List[JobSpec], path: Path, address: Optional[str] = None, num_cpus: int = 2,
              log: Callable[[str], None] = print, finish: Optional[Finish] = None) -> Dict[str, object]:
    """Run every job of the plan as its own actor; returns (and writes) the results."""
    started_ray = not ray.is_initialized()
    connect(address, specs[0].cfg, num_cpus=num_cpus)  # a wrong address fails before anything is written
    sweep = SweepResults(path, specs)
    try:
        pending: Dict[Any, str] = {}
        actors = {}
        for spec in specs:
            actor = JobActor.options(num_cpus=float(spec.cfg.resources.cpus_per_stream)).remote()
            actors[spec.name] = actor
            cfg = OmegaConf.to_container(spec.cfg, resolve=True)
            pending[actor.run.remote(spec.job, cfg, spec.name, str(path / spec.name))] = spec.name
        log(f"sweep: {len(specs)} jobs on {ray.cluster_resources().get('CPU', 0):g} CPUs, run directory {path}")
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(done[0])
            sweep.done(name, ray.get(done[0]))
            log(f"sweep: {name} done ({len(sweep.results['jobs'])}/{len(specs)})")
            ray.kill(actors.pop(name))
        return sweep.finish(finish)
    finally:
        sweep.close()
        if started_ray:
            ray.shutdown()
