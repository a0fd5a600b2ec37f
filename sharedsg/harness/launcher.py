"""What an experiment runs on: streams (a :class:`Backend`) and independent jobs (``map``).

``local_launcher()`` runs everything in this process (``--local``);
``sharedsg.runtime.cluster.launcher.ray_launcher`` runs streams as actors and jobs as parallel Ray tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Sequence

from omegaconf import DictConfig

from sharedsg.harness.backend import Backend, LocalBackend
from sharedsg.harness.runlog import RunLog

BackendFactory = Callable[[DictConfig, RunLog], Backend]
"""(config, run log) -> a backend running that config's streams."""

JobMap = Callable[[Callable[..., Any], Sequence[tuple]], List[Any]]
"""(fn, [args, ...]) -> [fn(*args), ...]; fn must be a picklable module-level function with a
``device`` keyword (None: the config's ``learner.device``), which a Ray job actor sets to its GPU."""


@dataclass
class Launcher:
    backend: BackendFactory
    map: JobMap


def _local_backend(cfg: DictConfig, log: RunLog) -> Backend:
    return LocalBackend(cfg)


def _local_map(fn: Callable[..., Any], args: Sequence[tuple]) -> List[Any]:
    return [fn(*a) for a in args]


def local_launcher() -> Launcher:
    return Launcher(backend=_local_backend, map=_local_map)
