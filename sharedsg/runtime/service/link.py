"""The public API on Ray (:mod:`sharedsg.api`): a model joins one group of an experiment's SG
service through a :class:`~sharedsg.runtime.service.endpoint.RayEndpoint` (the one NMN streams on Ray use:
the group's dimension check at registration, exactly-once numbered pushes, at most
``sg.max_inflight_pushes`` in flight, weights by version), and a service started for API groups alone.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, Mapping, Optional, Tuple

import ray
from omegaconf import DictConfig, OmegaConf

from sharedsg.config import Config
from sharedsg.errors import UserError
from sharedsg.runtime import with_defaults
from sharedsg.runtime.service.client import SGClient
from sharedsg.runtime.service.endpoint import RayEndpoint
from sharedsg.runtime.cluster.connection import connect
from sharedsg.runtime.service.registry import find_server
from sharedsg.runtime.service.registry import registry_actor
from sharedsg.storage import resolve_root


def join(experiment: str, group: str, name: str, dims: Mapping[str, int],
         address: Optional[str] = None) -> Tuple[RayEndpoint, DictConfig]:
    """Model ``name`` registers with ``group`` of SG service ``experiment`` (at ``address``, else the Ray
    this process runs in, else the local Ray of attachable experiments); its endpoint and the service's
    config. A model that does not fit the group: a one-line :class:`UserError`."""
    connect(address, embedded_ok=False)
    registry = find_server(experiment)
    cfg = with_defaults(ray.get(registry.config.remote()))
    info = {"node": socket.gethostname(), "pid": os.getpid(), "api": True}
    client = SGClient(registry, name, group, dict(dims), {"sg_dims": dict(dims)}, info, start_seq=None,
                      max_inflight=int(cfg.sg.max_inflight_pushes), wire_dtype=str(cfg.sg.wire_dtype))
    if client.error is not None:
        raise UserError(client.error)
    return RayEndpoint(client), cfg


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
