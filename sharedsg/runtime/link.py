"""The public API on Ray (:mod:`sharedsg.api`): a model's link to one group of an experiment's SG
service, and a service started for API groups alone.

:class:`RayLink` is a stream's side of the SG protocol (:class:`~sharedsg.runtime.client.SGClient`):
the group's dimension check at registration, numbered pushes resolved into an acknowledgement
watermark (exactly once, across restarts), at most ``sg.max_inflight_pushes`` in flight, and a
replica of the weights refreshed by version: in the background once it is behind, waited for only
when it is more than ``sg.max_staleness`` versions behind.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, Mapping, Optional

import ray
from omegaconf import DictConfig, OmegaConf

from sharedsg.config import Config
from sharedsg.errors import UserError
from sharedsg.learn.types import SGState, SGTargets
from sharedsg.runtime import with_defaults
from sharedsg.runtime.client import SGClient
from sharedsg.runtime.job import connect, find_server
from sharedsg.runtime.registry import registry_actor
from sharedsg.storage import resolve_root


class RayLink:
    def __init__(self, experiment: str, group: str, name: str, dims: Mapping[str, int],
                 address: Optional[str] = None) -> None:
        connect(address, embedded_ok=False)
        registry = find_server(experiment)
        self.sg = with_defaults(ray.get(registry.config.remote())).sg
        info = {"node": socket.gethostname(), "pid": os.getpid(), "api": True}
        self.client = SGClient(registry, name, group, dict(dims), {"sg_dims": dict(dims)}, info, start_seq=None,
                               max_inflight=int(self.sg.max_inflight_pushes), wire_dtype=str(self.sg.wire_dtype))
        if self.client.error is not None:
            raise UserError(self.client.error)

    def receive(self, have_version: int) -> Optional[SGState]:
        self.client.poll(wait_for=len(self.client.pending))  # the acknowledgements that are in
        if have_version < 0:
            return self.client.pull(-1)
        return self.client.fresh(have_version, int(self.sg.max_staleness))

    def send(self, targets: SGTargets, have_version: int) -> None:
        self.client.push(targets, lag=float(self.client.known_version - have_version))
        self.client.prefetch(have_version, int(self.sg.max_staleness))

    def flush(self, have_version: int) -> Optional[SGState]:
        self.client.flush()
        ray.get(self.client.actor.drain.remote())
        return self.client.pull(have_version)

    def state(self) -> Dict[str, Any]:
        """The group's state (versions, pushes per model, duplicates, lost pushes)."""
        return ray.get(self.client.actor.state.remote())

    def close(self) -> None:
        self.client.flush()


class Service:
    """An SG service (a registry, one group actor per group) named ``experiment`` for API groups."""

    def __init__(self, experiment: str, storage: str, sg: DictConfig) -> None:
        storage = resolve_root(storage)  # the group actors' working folders are not this process's
        cfg = OmegaConf.merge(OmegaConf.structured(Config), {"experiment": {"name": experiment, "storage": storage}})
        cfg.sg = sg
        self.registry = registry_actor(cfg, storage, detached=False)
        ray.get(self.registry.ping.remote())

    def state(self) -> Dict[str, Any]:
        return ray.get(self.registry.state.remote())

    def stop(self) -> None:
        """The groups' last checkpoints; the groups and the registry end."""
        ray.get(self.registry.stop.remote())
        ray.kill(self.registry, no_restart=True)
