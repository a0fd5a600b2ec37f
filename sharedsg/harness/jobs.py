"""Independent jobs (one Omniglot setting x method, one MNIST method, ...) and their sweep.

A job class has ``__init__(cfg, name)``, ``run(directory, progress) -> results`` and
``scalars``, the (tag, step, value) list it has produced so far (checkpointed with it; steps
increase within a tag); it checkpoints its whole progress into ``directory`` so that running it
again resumes. Which experiment kinds have jobs, and which job class runs them, is the
experiment registry's (``sharedsg.experiments.registry.job_plan``); this module only runs a
plan: :func:`run_jobs` in this process, ``sharedsg.runtime.sweep.run_sweep`` as parallel Ray
actors. Both write the same run directory in ``experiment.storage`` (an absolute path or a URI,
the same for every node): ``<storage>/<name>/<experiment.run_name or main>/<job>/`` holds each
job's checkpoint; the driver writes the jobs' scalars to TensorBoard while they run
(:meth:`SweepResults.log_scalars`) and ``results.json`` after every job.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from omegaconf import DictConfig, OmegaConf

from sharedsg import storage
from sharedsg.harness.runlog import RunLog, write_json_atomic

CHECKPOINT = "checkpoint.pt"  # a job's file in its folder (the job classes write it)
Scalar = Tuple[str, int, float]
Progress = Optional[Callable[[str], None]]
Finish = Callable[[Path, List["JobSpec"], Dict[str, Dict[str, Any]]], Dict[str, Any]]
"""(run directory, the finished jobs, their results by name) -> extra results (figures, summaries)."""


def mean_ci95(values: List[float]) -> Tuple[float, float]:
    """Mean and the half-width of its normal 95% confidence interval."""
    a = np.asarray(values, dtype=np.float64)
    if len(a) == 0:
        return float("nan"), float("nan")
    if len(a) == 1:
        return float(a[0]), float("nan")
    return float(a.mean()), float(1.96 * a.std(ddof=1) / math.sqrt(len(a)))


@dataclass(frozen=True)
class JobSpec:
    """One job of a sweep: its name (unique in the sweep), its config and the class that runs it."""

    name: str
    cfg: DictConfig
    job: type


def sweep_path(cfgs: List[DictConfig], name: Optional[str] = None) -> str:
    """The run location of a sweep: ``<storage>/<name or the experiment's>/<run_name or main>``."""
    first = cfgs[0].experiment
    sweep_name = name or (first.name if len(cfgs) == 1 else "sweep")
    return storage.join(first.storage or first.run_dir, sweep_name, first.run_name or "main")


def job_location(path: str, job: str) -> str:
    """Where a job checkpoints: its folder in the sweep's storage location (any node reads it)."""
    return storage.join(path, job)


def strip_scalars(results: Dict[str, object]) -> Dict[str, object]:
    return {k: v for k, v in results.items() if k != "scalars"}


def logged_steps(directory: Path) -> Dict[str, int]:
    """tag -> the last step of the scalars already in the TensorBoard events under ``directory``."""
    if not Path(directory).is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: max(e.step for e in acc.Scalars(tag)) for tag in acc.Tags()["scalars"]}


class SweepResults:
    """``results.json`` of a sweep, rewritten after every finished job."""

    def __init__(self, location: str, specs: List[JobSpec]) -> None:
        self.location, self.specs = storage.location(location), specs
        self.log = RunLog(self.location)
        self.path = self.log.path  # the local folder (a URI's staging folder)
        self.started = time.perf_counter()
        parts = self.location.rstrip("/").split("/")
        self.results: Dict[str, Any] = {
            "sweep": parts[-2], "run": parts[-1], "path": self.location, "jobs": {},
            "configs": _unique_configs(specs)}
        self._last: Dict[str, Dict[str, int]] = {}  # job -> tag -> last step in its TensorBoard events
        for spec in specs:
            self._last[spec.name] = logged_steps(self.path / spec.name)  # before this run writes anything
        # jobs without events yet: their config goes in with their first scalars, so that a job
        # that fails before it starts leaves no folder (a resumed one has its config already)
        self._unlogged = {spec.name: spec.cfg for spec in specs if not self._last[spec.name]}
        self._uploaded = time.monotonic()

    def log_scalars(self, name: str, scalars: List[Scalar], upload_every_s: float = 0.0) -> int:
        """Job ``name``'s scalars into its TensorBoard writer, each (tag, step) once: a scalar whose
        step is not past its tag's last logged step (this session's or an earlier one's: a resumed
        sweep) is skipped. With a URI storage the run folder is uploaded at most every
        ``upload_every_s`` seconds. Returns how many were written."""
        if not scalars and name in self._unlogged:
            return 0  # not started yet: no folder
        self._log_config(name)
        last, w, n = self._last.setdefault(name, {}), self.log.writer(name), 0
        for tag, step, value in scalars:
            if int(step) > last.get(tag, -1):
                w.add_scalar(tag, float(value), int(step))
                last[tag] = int(step)
                n += 1
        w.flush()
        if time.monotonic() - self._uploaded >= upload_every_s:
            self._uploaded = time.monotonic()
            self.log.flush()
        return n

    def _log_config(self, name: str) -> None:
        """The job's config into its folder, with the first thing it writes there."""
        if name in self._unlogged:
            self.log.config(name, self._unlogged.pop(name))

    def done(self, name: str, res: Dict[str, object]) -> None:
        self._log_config(name)
        self.log_scalars(name, res.get("scalars", []))
        self.results["jobs"][name] = strip_scalars(res)
        self._write()

    def finish(self, finish: Optional[Finish]) -> Dict[str, Any]:
        if finish is not None:
            if storage.is_uri(self.location):  # the jobs' checkpoints, read from storage, beside the figures
                for spec in self.specs:
                    data = storage.read_bytes(storage.join(job_location(self.location, spec.name), CHECKPOINT))
                    if data is not None:
                        storage.write_bytes(self.path / spec.name / CHECKPOINT, data)
            self.results.update(finish(self.path, self.specs, self.results["jobs"]))
        self._write()
        return self.results

    def close(self) -> None:
        self.log.close()

    def _write(self) -> None:
        self.results["wall_time_s"] = time.perf_counter() - self.started
        write_json_atomic(self.path / "results.json", self.results)
        self.log.flush()


def _unique_configs(specs: List[JobSpec]) -> List[Dict[str, Any]]:
    seen: List[int] = []
    out = []
    for s in specs:
        if id(s.cfg) not in seen:
            seen.append(id(s.cfg))
            out.append(OmegaConf.to_container(s.cfg, resolve=True))
    return out


def run_jobs(specs: List[JobSpec], path: str, log: Callable[[str], None] = print,
             finish: Optional[Finish] = None) -> Dict[str, Any]:
    """Every job of the plan, one after another in this process (``--local``)."""
    sweep = SweepResults(path, specs)
    try:
        for spec in specs:
            job, logged = spec.job(spec.cfg, spec.name), 0

            def progress(msg: str) -> None:  # after every checkpoint: the new scalars to TensorBoard too
                nonlocal logged
                log(msg)
                new = job.scalars[logged:]
                logged += len(new)
                sweep.log_scalars(spec.name, new, upload_every_s=float(spec.cfg.experiment.progress_every_s))

            res = job.run(Path(job_location(path, spec.name)), progress=progress)
            sweep.done(spec.name, res)
            log(f"sweep: {spec.name} done ({len(sweep.results['jobs'])}/{len(specs)})")
        return sweep.finish(finish)
    finally:
        sweep.close()
