"""``SGServer``: one Ray actor per experiment that owns the SG groups.

It holds one :class:`~sharedsg.learn.sg.SGLearner` per sharing group (``sg.sharing``:
``shared`` = one group ``shared`` for every stream; ``separate`` = a group per stream, named
after it) and serves the streams:

- ``register``: a stream's controller and target dimensions are checked against its group;
- ``push``: true-gradient targets train the group (Eq. 11); idempotent per stream and
  sequence number, so Ray's task retries never count a push twice;
- ``pull``: the group's weights when they are newer than a version (the ``replica`` transport);
- ``predict``: synthetic gradients computed here (the ``rpc`` transport);
- ``state``: streams, versions, pushes, queue, for ``sharedsg status``.

Fault tolerance: a checkpoint (weights, optimiser, versions, per-stream sequence numbers) is
written every ``sg.checkpoint_every_pushes`` pushes or ``sg.checkpoint_every_s`` seconds and on
every registration, into ``<run>/checkpoints/server.pt``. When Ray restarts the actor it reloads
that checkpoint and moves every version ``checkpoint_every_pushes + 1`` ahead: at most that many
updates were lost since the checkpoint, so versions never go backwards and every replica
refreshes to the restored weights. Streams report the highest sequence number the server
acknowledged; pushes acknowledged before the crash but missing from the checkpoint are counted
as ``lost_pushes``.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Dict, Optional

import ray
import torch
from omegaconf import OmegaConf

from sharedsg.config import ModelConfig
from sharedsg.learn.sg import DimensionMismatch, SGLearner
from sharedsg.learn.types import SGState, SGTargets
from sharedsg.runtime import NAMESPACE, checkpoint, with_defaults, was_reconstructed


class SGServer:
    """The plain class; :func:`server_actor` wraps it in ``ray.remote`` with the run's options."""

    def __init__(self, cfg: Dict[str, Any], run_path: str) -> None:
        torch.set_num_threads(1)
        self.cfg = with_defaults(cfg)
        self.run_path = str(run_path)
        self.ckpt_path = checkpoint.server_checkpoint(self.run_path)
        self.every_pushes = int(self.cfg.sg.checkpoint_every_pushes)
        self.every_s = float(self.cfg.sg.checkpoint_every_s)
        self.groups: Dict[str, SGLearner] = {}
        self.group_models: Dict[str, Dict[str, Any]] = {}
        self.streams: Dict[str, Dict[str, Any]] = {}
        self.pushes = 0
        self.duplicates = 0
        self.lost_pushes = 0
        self.restarts = 0
        self.checkpoints = 0
        self.since_ckpt = 0
        self.last_ckpt = time.monotonic()
        self.started = time.time()
        self._state_cache: Dict[str, SGState] = {}
        saved = checkpoint.load(self.ckpt_path)
        if saved is not None:
            self._restore(saved)
        if was_reconstructed():
            self.restarts += 1
            for g in self.groups.values():
                g.version += self.every_pushes + 1  # never behind any version served before the crash

    # -- groups and streams ------------------------------------------------------------
    def _group_name(self, stream: str) -> str:
        return "shared" if self.cfg.sg.sharing == "shared" else stream

    def _group(self, name: str, model: Dict[str, Any]) -> SGLearner:
        if name not in self.groups:
            model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), model)
            self.groups[name] = SGLearner(model_cfg, self.cfg.sg, seed=int(self.cfg.experiment.seed))
            self.group_models[name] = model
        return self.groups[name]

    def register(self, stream: str, dims: Dict[str, int], model: Dict[str, Any],
                 info: Optional[Dict[str, Any]] = None, group: str = "") -> Dict[str, Any]:
        """Add (or re-add, after a restart) a stream to ``group`` (empty: by ``sg.sharing``);
        ``{"error": ...}`` when its dimensions do not fit."""
        group_name = group or self._group_name(stream)
        group = self._group(group_name, model)
        try:
            group.check_dims(dims)
        except DimensionMismatch as exc:
            return {"error": f"stream '{stream}' does not fit SG group '{group_name}' of experiment "
                             f"'{self.cfg.experiment.name}': {exc}"}
        entry = self.streams.setdefault(stream, {
            "group": group_name, "last_seq": 0, "pushes": 0, "lost": 0, "duplicates": 0,
            "in_flight": 0, "registrations": 0, "dims": dict(dims),
        })
        entry["registrations"] += 1
        entry.update({k: v for k, v in (info or {}).items() if isinstance(v, (str, int, float, bool))})
        self._checkpoint()
        return {"group": group_name, "version": group.version, "last_seq": entry["last_seq"],
                "run_path": self.run_path}

    # -- the SG protocol ---------------------------------------------------------------
    def push(self, stream: str, seq: int, targets: SGTargets, acked_seq: int = 0,
             in_flight: int = 0) -> Dict[str, Any]:
        """Train the stream's group on one step's targets unless ``seq`` was applied already."""
        entry = self.streams.get(stream)
        if entry is None:
            return {"error": f"stream '{stream}' is not registered", "applied": False, "seq": seq}
        group = self.groups[entry["group"]]
        entry["in_flight"] = int(in_flight)
        if acked_seq > entry["last_seq"]:  # acknowledged before a crash, not in the checkpoint
            lost = int(acked_seq - entry["last_seq"])
            entry["lost"] += lost
            self.lost_pushes += lost
            entry["last_seq"] = int(acked_seq)
        if seq <= entry["last_seq"]:
            entry["duplicates"] += 1
            self.duplicates += 1
            return {"applied": False, "seq": seq, "version": group.version}
        losses = group.update([targets])
        entry["last_seq"] = int(seq)
        entry["pushes"] += 1
        self.pushes += 1
        self.since_ckpt += 1
        if self.since_ckpt >= self.every_pushes or (
                self.every_s > 0 and time.monotonic() - self.last_ckpt >= self.every_s):
            self._checkpoint()
        return {"applied": True, "seq": seq, "version": group.version, "losses": losses}

    def pull(self, group: str, since_version: int = -1) -> Optional[SGState]:
        """The group's weights if its version is newer than ``since_version``, else None."""
        g = self.groups[group]
        if g.version <= since_version:
            return None
        cached = self._state_cache.get(group)
        if cached is None or cached.version != g.version:
            cached = self._state_cache[group] = g.state()
        return cached

    def predict(self, group: str, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.groups[group].predict(h, y)

    # -- reporting -----------------------------------------------------------------------
    def versions(self) -> Dict[str, int]:
        return {g: sg.version for g, sg in self.groups.items()}

    def config(self) -> Dict[str, Any]:
        return OmegaConf.to_container(self.cfg, resolve=True)

    def ping(self) -> bool:
        return True

    def state(self) -> Dict[str, Any]:
        return {
            "experiment": self.cfg.experiment.name,
            "namespace": NAMESPACE,
            "run_path": self.run_path,
            "attachable": bool(self.cfg.experiment.attachable),
            "sharing": self.cfg.sg.sharing,
            "transport": self.cfg.sg.transport,
            "node": socket.gethostname(),
            "pid": os.getpid(),
            "uptime_s": time.time() - self.started,
            "groups": {g: {"version": sg.version, "dims": sg.dims,
                           "streams": sorted(n for n, s in self.streams.items() if s["group"] == g)}
                       for g, sg in self.groups.items()},
            "streams": {n: dict(s) for n, s in self.streams.items()},
            "pushes": self.pushes,
            "duplicates": self.duplicates,
            "lost_pushes": self.lost_pushes,
            "queue": sum(int(s["in_flight"]) for s in self.streams.values()),
            "restarts": self.restarts,
            "checkpoints": self.checkpoints,
            "checkpoint_every_pushes": self.every_pushes,
        }

    # -- checkpoints ---------------------------------------------------------------------
    def _checkpoint(self) -> str:
        checkpoint.save(self.ckpt_path, {
            "format": 1,
            "groups": {g: sg.state_dict() for g, sg in self.groups.items()},
            "group_models": self.group_models,
            "streams": {n: {k: v for k, v in s.items()} for n, s in self.streams.items()},
            "pushes": self.pushes, "duplicates": self.duplicates, "lost_pushes": self.lost_pushes,
            "restarts": self.restarts, "checkpoints": self.checkpoints + 1,
        })
        self.checkpoints += 1
        self.since_ckpt = 0
        self.last_ckpt = time.monotonic()
        return str(self.ckpt_path)

    def checkpoint(self) -> str:
        return self._checkpoint()

    def _restore(self, saved: Dict[str, Any]) -> None:
        for g, model in saved["group_models"].items():
            self._group(g, model).load_state_dict(saved["groups"][g])
        self.streams = {n: dict(s) for n, s in saved["streams"].items()}
        for k in ("pushes", "duplicates", "lost_pushes", "restarts", "checkpoints"):
            setattr(self, k, int(saved.get(k, 0)))

    def stop(self) -> str:
        """The last checkpoint before ``sharedsg stop`` kills the actor."""
        return self._checkpoint()


def server_actor(cfg, run_path: str, *, detached: bool, node_id: Optional[str] = None):
    """Start the experiment's named ``SGServer`` (``sgserver:<experiment>`` in namespace ``sharedsg``)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from sharedsg.runtime import server_name

    options: Dict[str, Any] = dict(
        name=server_name(cfg.experiment.name), namespace=NAMESPACE,
        max_restarts=int(cfg.resources.max_restarts), max_task_retries=-1,
        num_cpus=float(cfg.resources.server_cpus),
    )
    if detached:
        options["lifetime"] = "detached"
    if node_id:  # beside the driver, so the checkpoints land in the driver's run directory
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=True)
    plain = OmegaConf.to_container(cfg, resolve=True)
    return ray.remote(SGServer).options(**options).remote(plain, str(run_path))
