"""Experiment kinds (``experiment.kind``): the one table of what runs each kind.

Two sorts of kind:

- *stream experiments* (``train``, ``knowledge_sharing``, ``metatest``) have a runner
  ``(config, launcher, run log) -> results`` that drives streams (and parallel tasks) through a
  :class:`~sharedsg.harness.launcher.Launcher`, in this process or on Ray;
- *job kinds* (``fewshot``, ``mnist_rare``) are independent, resumable jobs (a job class and
  the job names of a config): ``sharedsg run CONFIG`` and ``sharedsg sweep CONFIG...`` hand
  them to :func:`sharedsg.harness.jobs.run_jobs` (``--local``) or to the Ray sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from omegaconf import DictConfig

from sharedsg.errors import UserError
from sharedsg.experiments.knowledge_sharing import format_table as knowledge_sharing_table
from sharedsg.experiments.knowledge_sharing import run_knowledge_sharing
from sharedsg.experiments.metatest import format_table as metatest_table
from sharedsg.experiments.metatest import run_metatest
from sharedsg.experiments.mnist_rare import RareJob, rare_jobs
from sharedsg.experiments.omniglot import FewShotJob, fewshot_jobs, seed_summary
from sharedsg.experiments.train import run_training
from sharedsg.harness.jobs import Finish, JobSpec
from sharedsg.harness.launcher import Launcher
from sharedsg.harness.runlog import RunLog

Runner = Callable[[DictConfig, Launcher, RunLog], Dict[str, object]]
"""(config, launcher, run log) -> results; the runner makes and closes its backends."""


def _rare_finish(path: Path, specs: List[JobSpec], jobs: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    from sharedsg.experiments.plots_classification import rare_figures  # matplotlib: only to draw

    return {"figures": rare_figures(path, {s.name: path / s.name for s in specs})}


def _fewshot_finish(path: Path, specs: List[JobSpec], jobs: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    return {"summary": seed_summary(jobs)}


@dataclass(frozen=True)
class Kind:
    """What runs one ``experiment.kind``: a runner, or job names and a job class (job kinds)."""

    runner: Optional[Runner] = None
    table: Optional[Callable[[Dict[str, object]], str]] = None  # results -> the table `sharedsg run` prints
    jobs: Optional[Callable[[DictConfig], List[str]]] = None  # job kinds: the job names of a config
    job: Optional[type] = None  # job kinds: ``job(cfg, name).run(directory, progress)``
    finish: Optional[Finish] = None  # after a kind's jobs: figures, summaries


KINDS: Dict[str, Kind] = {
    "train": Kind(runner=run_training),
    "knowledge_sharing": Kind(runner=run_knowledge_sharing, table=knowledge_sharing_table),
    "metatest": Kind(runner=run_metatest, table=metatest_table),
    "fewshot": Kind(jobs=fewshot_jobs, job=FewShotJob, finish=_fewshot_finish),  # Omniglot Table 1 (Sec. 4.1)
    "mnist_rare": Kind(jobs=rare_jobs, job=RareJob, finish=_rare_finish),  # MNIST rare classes (Sec. 5.1)
}


def get_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise UserError(f"experiment.kind: '{kind}' is not one of {', '.join(sorted(KINDS))}")
    return KINDS[kind]


def job_plan(cfgs: List[DictConfig]) -> List[JobSpec]:
    """Every job of every config (job kinds only); job names must be unique across the configs."""
    specs: List[JobSpec] = []
    for cfg in cfgs:
        kind = get_kind(str(cfg.experiment.kind))
        if kind.jobs is None:
            swept = ", ".join(k for k, v in KINDS.items() if v.jobs is not None)
            raise UserError(f"experiment.kind: '{cfg.experiment.kind}' cannot be swept; use one of {swept}")
        for name in kind.jobs(cfg):
            if any(name == s.name for s in specs):
                raise UserError(f"job '{name}' appears in two configs; give each config its own settings")
            specs.append(JobSpec(name, cfg, kind.job))
    return specs


def finish_plan(path: Path, specs: List[JobSpec], jobs: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The kinds' ``finish`` steps over their finished jobs (e.g. the MNIST figures)."""
    out: Dict[str, Any] = {}
    for name in dict.fromkeys(str(s.cfg.experiment.kind) for s in specs):
        finish = KINDS[name].finish
        if finish is not None:
            mine = [s for s in specs if s.cfg.experiment.kind == name]
            out.update(finish(path, mine, {s.name: jobs[s.name] for s in mine if s.name in jobs}))
    return out
