"""``sharedsg run`` on Ray: a new SG service (registry and groups, placed together) plus one actor
per stream (:func:`ray_backend`), and jobs as Ray job actors (:func:`ray_launcher`)."""

from __future__ import annotations

import sys
from typing import Optional

import ray
from omegaconf import DictConfig

from sharedsg.errors import UserError
from sharedsg.harness.launcher import Launcher
from sharedsg.harness.runlog import RunLog
from sharedsg.runtime import NAMESPACE, server_name
from sharedsg.runtime.cluster.connection import connect
from sharedsg.runtime.hosting import placement
from sharedsg.runtime.hosting.backend import RayBackend
from sharedsg.runtime.service.registry import registry_actor
from sharedsg.runtime.sweep import map_jobs


def _driver_node() -> Optional[str]:
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:
        return None


def ray_backend(cfg: DictConfig, log: RunLog, address: Optional[str] = None) -> RayBackend:
    """The backend of ``sharedsg run`` without ``--local``: a new server plus one actor per stream."""
    connect(address, cfg)
    try:
        existing = ray.get_actor(server_name(cfg.experiment.name), namespace=NAMESPACE)
    except ValueError:
        existing = None
    if existing is not None:
        run = ray.get(existing.state.remote(), timeout=30)["run_path"]
        raise UserError(f"experiment '{cfg.experiment.name}' is already running in namespace '{NAMESPACE}' "
                        f"(run {run}); attach streams with `sharedsg attach --experiment {cfg.experiment.name}` "
                        f"or stop it with `sharedsg stop --experiment {cfg.experiment.name}`")
    # everything the run needs, all or nothing, before any actor starts or anything is written
    reservation = placement.reserve_run(cfg)
    try:
        server = registry_actor(cfg, log.location, detached=bool(cfg.experiment.attachable), node_id=_driver_node())
        # each SG group's actor goes into its own bundle of the reservation
        ray.get([server.place.remote(g, reservation.server_options(g)) for g in reservation.server_bundles])
    except BaseException:
        reservation.release(servers=True)
        raise
    log.config("server", cfg)
    return RayBackend(cfg, log, server, owns_server=True, reservation=reservation)


def ray_launcher(address: Optional[str] = None, cfg: Optional[DictConfig] = None) -> Launcher:
    """Streams as actors (an embedded Ray sized for the first backend's streams), jobs as named job
    actors (``sharedsg status`` lists them) with ``cfg``'s ``resources.cpus_per_stream`` CPUs and
    ``resources.gpus_per_job`` GPUs each."""
    cpus = float(cfg.resources.cpus_per_stream) if cfg is not None else 1.0
    gpus = float(cfg.resources.gpus_per_job) if cfg is not None else 0.0
    require_cuda = bool(cfg.resources.require_cuda) if cfg is not None else True

    def backend(cfg: DictConfig, log: RunLog) -> RayBackend:
        connect(address, cfg)
        return ray_backend(cfg, log, address=address)

    def job_map(fn, args_list):
        connect(address, cfg)
        sweep = f"{cfg.experiment.name}/{cfg.experiment.run_name}" if cfg is not None else "jobs"
        every = float(cfg.experiment.progress_every_s) if cfg is not None else 30.0
        return map_jobs(fn, [tuple(a) for a in args_list], sweep=sweep, cpus=cpus, gpus=gpus,
                        require_cuda=require_cuda, progress_every_s=every,
                        log=lambda m: print(m, file=sys.stderr, flush=True))

    return Launcher(backend=backend, map=job_map)

