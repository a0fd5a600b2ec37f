"""``sharedsg sweep`` on Ray: the jobs of a plan as parallel, resumable Ray actors.

A job (see :mod:`sharedsg.harness.jobs`) runs in its own actor (``resources.cpus_per_stream``
CPUs, ``resources.gpus_per_job`` GPUs, one torch thread), owns its model (so settings with
different N never share SG predictors) and checkpoints its whole progress into
``<storage>/<sweep>/<run>/<job>/checkpoint.pt``, an absolute path or a URI that every node
reaches (not the actor's working directory). Running the same command again resumes every job
from its checkpoint; a crashed actor is restarted by Ray and its task retried, which resumes
the same way, on any node. The driver collects each job's results as it finishes
(:class:`~sharedsg.harness.jobs.SweepResults`: TensorBoard under ``<run>/<job>/``,
``<run>/results.json``) and runs the plan's ``finish`` step at the end.

Progress: each job actor is named ``job:<sweep>:<job>`` in namespace ``sharedsg`` and keeps
its last progress line (iteration, test accuracy so far); the driver prints a progress table
every ``experiment.progress_every_s`` seconds, and ``sharedsg status`` (:func:`job_states`) lists the
jobs of every sweep running on the cluster. At the same interval the driver fetches each
running job's new scalars from its actor (:meth:`JobActor.scalars`) into TensorBoard, so a
job's curves grow while it runs (each (tag, step) once, :meth:`SweepResults.log_scalars`).

Device: a job computes on the device Ray assigned its actor (:func:`assigned_device`: ``cuda``
when ``resources.gpus_per_job`` gave it a GPU, else ``cpu``): ``run`` sets ``learner.device`` to
it, ``call`` passes it as the job function's ``device`` keyword. The actor's progress state and
the job's results record it with the GPU ids Ray gave (``device``, ``gpu_ids``).

The job classes come with the plan (the experiment registry makes it), so this module never
imports the experiments.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import ray
import torch
from omegaconf import OmegaConf

from sharedsg.errors import UserError
from sharedsg.harness.jobs import Finish, JobSpec, SweepResults, job_location
from sharedsg.runtime import NAMESPACE, with_defaults
from sharedsg.runtime.hosting.actors import stop_actors
from sharedsg.runtime.cluster.connection import connect
from sharedsg.runtime.hosting.stream import assigned_device

JOB_PREFIX = "job:"


def job_actor_name(sweep: str, job: str) -> str:
    return f"{JOB_PREFIX}{sweep}:{job}"


@ray.remote(max_restarts=-1, max_task_retries=-1, max_concurrency=2)
class JobActor:
    """One sweep job; ``torch.set_num_threads(1)`` so N actors use N cores. Two threads: ``run``
    and the progress queries that ``status`` and the driver make meanwhile."""

    def __init__(self, sweep: str, name: str) -> None:
        torch.set_num_threads(1)
        self.sweep, self.name = sweep, name
        self.state: Dict[str, Any] = {"job": name, "sweep": sweep, "status": "starting", "message": "",
                                      "started": time.time(), "updated": time.time()}
        self.job: Any = None

    def _progress(self, msg: str) -> None:
        print(msg, flush=True)
        self.state.update(status="running", message=msg, updated=time.time())

    def _device(self, require_cuda: bool) -> Tuple[str, Optional[str]]:
        """The assigned device (recorded in the progress state with Ray's GPU ids), or an error."""
        device, error = assigned_device(require_cuda)
        self.state.update(device=device, gpu_ids=[str(g) for g in ray.get_gpu_ids()])
        if error is not None:
            self.state.update(status="failed", message=error)
        return device, error

    def run(self, job: type, cfg: Dict[str, Any], directory: str) -> Dict[str, object]:
        # merged over the structured defaults, so keys added to config.py since the driver started exist
        c = with_defaults(cfg)
        device, error = self._device(bool(c.resources.require_cuda))
        if error is not None:
            return {"error": error}
        c.learner.device = device  # the job builds its model, batches and evaluation there
        self.state.update(status="running")
        try:
            self.job = job(c, self.name)
            out = self.job.run(Path(directory), progress=self._progress)
        except UserError as exc:  # its data or config: one line at the driver, not a retried task's traceback
            self.state.update(status="failed", message=str(exc))
            return {"error": str(exc)}
        self.state.update(status="done", updated=time.time())
        return {**out, "device": device, "gpu_ids": self.state["gpu_ids"]}

    def call(self, require_cuda: bool, fn: Callable[..., Any], args: tuple) -> Any:
        """A launcher job (``Launcher.map``: e.g. one meta-test method and seed):
        ``fn(*args, device=<the assigned device>)``."""
        device, error = self._device(require_cuda)
        if error is not None:
            return {"error": error}
        self.state.update(status="running", message=f"{getattr(fn, '__name__', 'job')} started")
        try:
            out = fn(*args, device=device)
        except UserError as exc:
            self.state.update(status="failed", message=str(exc))
            return {"error": str(exc)}
        self.state.update(status="done", updated=time.time())
        return out

    def progress(self) -> Dict[str, Any]:
        return dict(self.state)

    def scalars(self, start: int) -> List[Tuple[str, int, float]]:
        """The job's scalars from index ``start`` on (none before its ``run`` has built it)."""
        return [] if self.job is None else list(self.job.scalars[start:])


def job_states() -> Dict[str, List[Dict[str, Any]]]:
    """sweep -> the progress of each of its jobs running on the connected cluster (``sharedsg status``)."""
    refs: Dict[Any, tuple] = {}
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a.get("namespace") != NAMESPACE or not a["name"].startswith(JOB_PREFIX):
            continue
        sweep, job = a["name"][len(JOB_PREFIX):].rsplit(":", 1)
        try:
            refs[ray.get_actor(a["name"], namespace=NAMESPACE).progress.remote()] = (sweep, job)
        except ValueError:  # ended meanwhile
            continue
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=5.0) if refs else ([], [])
    out: Dict[str, List[Dict[str, Any]]] = {}
    for ref, (sweep, job) in refs.items():
        try:
            state = ray.get(ref) if ref in ready else {"job": job, "status": "waiting for resources", "message": ""}
        except ray.exceptions.RayError as exc:
            state = {"job": job, "status": f"unreachable ({type(exc).__name__})", "message": ""}
        out.setdefault(sweep, []).append(state)
    return out


def format_jobs(states: Dict[str, List[Dict[str, Any]]]) -> str:
    lines = []
    for sweep, jobs in sorted(states.items()):
        lines.append(f"sweep {sweep}: {len(jobs)} jobs running")
        for j in sorted(jobs, key=lambda s: s["job"]):
            lines.append(f"  job {j['job']}: {j['status']}  {j.get('message', '')}".rstrip())
    return "\n".join(lines)


def run_sweep(specs: List[JobSpec], path: str, address: Optional[str] = None, num_cpus: int = 2,
              log: Callable[[str], None] = print, finish: Optional[Finish] = None) -> Dict[str, object]:
    """Run every job of the plan as its own actor; returns (and writes) the results."""
    started_ray = not ray.is_initialized()
    connect(address, specs[0].cfg, num_cpus=num_cpus)  # a wrong address fails before anything is written
    sweep = SweepResults(path, specs)
    sweep_id = f"{sweep.results['sweep']}/{sweep.results['run']}"
    actors: Dict[str, Any] = {}
    try:
        pending: Dict[Any, str] = {}
        for spec in specs:
            r = spec.cfg.resources
            try:
                actor = JobActor.options(name=job_actor_name(sweep_id, spec.name), namespace=NAMESPACE,
                                         num_cpus=float(r.cpus_per_stream),
                                         num_gpus=float(r.gpus_per_job)).remote(sweep_id, spec.name)
            except ValueError:  # the name is taken
                raise UserError(f"sweep {sweep_id} is already running (job {spec.name}); see `sharedsg status`") from None
            actors[spec.name] = actor
            cfg = OmegaConf.to_container(spec.cfg, resolve=True)
            pending[actor.run.remote(spec.job, cfg, job_location(sweep.location, spec.name))] = spec.name
        res = ray.cluster_resources()
        log(f"sweep: {len(specs)} jobs on {res.get('CPU', 0):g} CPUs / {res.get('GPU', 0):g} GPUs, "
            f"storage {sweep.location}")
        last = time.monotonic()
        every = float(specs[0].cfg.experiment.progress_every_s)
        fetched = {name: 0 for name in actors}  # scalars taken from each job actor so far
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=min(5.0, every))
            for ref in done:
                name = pending.pop(ref)
                out = ray.get(ref)
                if "error" in out:
                    raise UserError(f"job {name}: {out['error']}")
                sweep.done(name, out)
                log(f"sweep: {name} done ({len(sweep.results['jobs'])}/{len(specs)})")
                stop_actors([actors.pop(name)])  # idle now: it ends by itself
            if pending and time.monotonic() - last >= every:
                last = time.monotonic()
                log(progress_table(actors, len(sweep.results["jobs"]), len(specs)))
                live_scalars(sweep, actors, fetched, every)
        return sweep.finish(finish)
    finally:
        for actor in actors.values():
            ray.kill(actor)
        sweep.close()
        if started_ray:
            ray.shutdown()


def live_scalars(sweep: SweepResults, actors: Dict[str, Any], fetched: Dict[str, int], upload_every_s: float) -> None:
    """The running jobs' scalars since the last fetch into TensorBoard (an actor that does not
    answer within 5 s, e.g. one still waiting for its CPUs, is asked again next time)."""
    refs = {a.scalars.remote(fetched[name]): name for name, a in actors.items()}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=5.0)
    for ref in ready:
        name = refs[ref]
        try:
            new = ray.get(ref)
        except ray.exceptions.RayError:  # restarting: its scalars come with the next fetch or its results
            continue
        fetched[name] += len(new)
        sweep.log_scalars(name, new, upload_every_s=upload_every_s)


def map_jobs(fn: Callable[..., Any], args_list: List[tuple], *, sweep: str, cpus: float, gpus: float,
             require_cuda: bool, progress_every_s: float, log: Callable[[str], None] = print) -> List[Any]:
    """``[fn(*args, device=...) ...]`` as named job actors (``status`` lists them), each with
    ``cpus``/``gpus`` and computing on the device Ray assigned it; a line per finished job and the
    progress table every ``progress_every_s`` seconds."""
    actors: Dict[str, Any] = {}
    refs: Dict[Any, int] = {}
    try:
        for i, args in enumerate(args_list):
            name = "-".join(str(a) for a in args if isinstance(a, (int, float)) or (isinstance(a, str) and len(a) < 40))
            name = f"{i}-{name}" if name else str(i)
            actor = JobActor.options(name=job_actor_name(sweep, name), namespace=NAMESPACE, num_cpus=cpus,
                                     num_gpus=gpus, max_restarts=2, max_task_retries=2).remote(sweep, name)
            actors[name] = actor
            refs[actor.call.remote(require_cuda, fn, tuple(args))] = i
        out: List[Any] = [None] * len(args_list)
        names = list(actors)
        last = time.monotonic()
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1, timeout=5.0)
            for ref in done:
                i = refs.pop(ref)
                out[i] = ray.get(ref)
                if isinstance(out[i], dict) and "error" in out[i]:
                    raise UserError(f"job {names[i]}: {out[i]['error']}")
                stop_actors([actors.pop(names[i])])  # idle now: it ends by itself
                log(f"{sweep}: job {names[i]} done ({len(args_list) - len(refs)}/{len(args_list)})")
            if refs and time.monotonic() - last >= progress_every_s:
                last = time.monotonic()
                log(progress_table(actors, len(args_list) - len(refs), len(args_list)))
        return out
    finally:
        for actor in actors.values():
            ray.kill(actor)


def progress_table(actors: Dict[str, Any], done: int, total: int) -> str:
    """One line per job not done: its last progress line (iteration, accuracy so far), or that it
    waits for its CPUs/GPUs (an actor not placed yet cannot answer)."""
    refs = {a.progress.remote(): name for name, a in actors.items()}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=5.0)
    states = {refs[r]: ray.get(r) for r in ready}
    lines = [f"sweep: {done}/{total} jobs done; the others:"]
    for name in actors:
        s = states.get(name, {"status": "waiting for resources", "message": ""})
        lines.append(f"  {name}: {s['status']}  {s.get('message', '')}".rstrip())
    return "\n".join(lines)


def job_actors() -> List[str]:
    """Names of the sweep job actors alive on the connected cluster."""
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a.get("namespace") == NAMESPACE and a["name"].startswith(JOB_PREFIX)]
