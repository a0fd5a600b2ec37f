"""``SGServer``: one Ray actor per experiment that owns the SG groups.

It holds one :class:`~sharedsg.learn.sg.SGLearner` per sharing group — the group of each
stream is decided on the driver (:func:`sharedsg.harness.stream.group_of`) and named in
``register`` — and serves the streams:

- ``register``: a stream's controller and target dimensions are checked against its group;
- ``push``: true-gradient targets train the group (Eq. 11); idempotent per stream and
  sequence number (exactly: the applied sequence numbers are tracked, since an async actor
  may run calls out of order), so Ray's task retries never count a push twice;
- ``pull``: the group's weights when they are newer than a version (the ``replica`` transport);
- ``predict``: synthetic gradients computed here (the ``rpc`` transport);
- ``state``: streams, versions, pushes, queue, for ``sharedsg status``.

The server is an async actor with a group commit: every method runs on its event loop (so
none sees a half-done update), and the pushes that arrive while an update runs are applied
together in the next one (up to ``sg.coalesce_max`` of a group, concatenated into one batch:
one optimiser step, one version). With one stream and an idle server that is one update per
push, as before; with many streams the server's cost per push falls as its load rises
instead of its queue growing.

Fault tolerance: a checkpoint (weights, optimiser, versions, per-stream sequence numbers) is
written every ``sg.checkpoint_every_pushes`` pushes or ``sg.checkpoint_every_s`` seconds and on
every registration, into ``<run>/checkpoints/server.pt``. When Ray restarts the actor it reloads
that checkpoint and moves every version ``checkpoint_every_pushes + 1`` ahead: at most that many
updates were lost since the checkpoint, so versions never go backwards and every replica
refreshes to the restored weights. A coalesced update never crosses a checkpoint boundary, so
at most ``checkpoint_every_pushes`` acknowledged pushes are ever missing from a checkpoint.
Streams report the sequence number up to which every push of theirs was acknowledged; pushes
acknowledged before the crash but missing from the checkpoint are counted as ``lost_pushes``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set

import ray
import torch
from omegaconf import OmegaConf

from sharedsg.config import ModelConfig
from sharedsg.learn.sg import DimensionMismatch, SGLearner
from sharedsg.learn.types import SGState, SGTargets
from sharedsg.runtime import NAMESPACE, checkpoint, with_defaults, was_reconstructed


ACTIVE_S = 1.0  # a stream that pushed this recently is waited for by the group commit


@dataclass
class _Push:
    stream: str
    seq: int
    targets: SGTargets
    done: "asyncio.Future[Dict[str, Any]]"


class SGServer:
    """The plain class; :func:`server_actor` wraps it in ``ray.remote`` with the run's options."""

    def __init__(self, cfg: Dict[str, Any], run_path: str) -> None:
        torch.set_num_threads(1)
        self.cfg = with_defaults(cfg)
        self.run_path = str(run_path)
        self.ckpt_path = checkpoint.server_checkpoint(self.run_path)
        self.every_pushes = int(self.cfg.sg.checkpoint_every_pushes)
        self.every_s = float(self.cfg.sg.checkpoint_every_s)
        self.coalesce_max = int(self.cfg.sg.coalesce_max)
        # rpc streams wait for every push: never hold one back for another stream's
        self.coalesce_wait_s = 0.0 if self.cfg.sg.transport == "rpc" else float(self.cfg.sg.coalesce_wait_ms) / 1e3
        self.groups: Dict[str, SGLearner] = {}
        self.group_models: Dict[str, Dict[str, Any]] = {}
        self.streams: Dict[str, Dict[str, Any]] = {}
        self.pushes = 0
        self.updates = 0
        self.coalesced = 0  # pushes applied in an update together with an earlier one
        self.duplicates = 0
        self.lost_pushes = 0
        self.restarts = 0
        self.checkpoints = 0
        self.since_ckpt = 0
        self.last_ckpt = time.monotonic()
        self.started = time.time()
        self._state_cache: Dict[str, SGState] = {}
        self._queue: List[_Push] = []
        self._queued: Dict[str, Set[int]] = {}  # per stream: sequence numbers queued, not yet applied
        self._drainer: Optional[asyncio.Future] = None
        self._arrived = asyncio.Event()  # set by every push that joins the queue
        self._last_push: Dict[str, float] = {}  # stream -> monotonic time of its last push
        saved = checkpoint.load(self.ckpt_path)
        if saved is not None:
            self._restore(saved)
        if was_reconstructed():
            self.restarts += 1
            for g in self.groups.values():
                g.version += self.every_pushes + 1  # never behind any version served before the crash

    # -- groups and streams ------------------------------------------------------------
    def _group(self, name: str, model: Dict[str, Any]) -> SGLearner:
        if name not in self.groups:
            model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), model)
            self.groups[name] = SGLearner(model_cfg, self.cfg.sg, seed=int(self.cfg.experiment.seed))
            self.group_models[name] = model
        return self.groups[name]

    def register(self, stream: str, group_name: str, dims: Dict[str, int], model: Dict[str, Any],
                 info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Add (or re-add, after a restart) a stream to SG group ``group_name``;
        ``{"error": ...}`` when its dimensions do not fit."""
        group = self._group(group_name, model)
        try:
            group.check_dims(dims)
        except DimensionMismatch as exc:
            return {"error": f"stream '{stream}' does not fit SG group '{group_name}' of experiment "
                             f"'{self.cfg.experiment.name}': {exc}"}
        entry = self.streams.setdefault(stream, {
            "group": group_name, "last_seq": 0, "ahead": [], "pushes": 0, "lost": 0, "duplicates": 0,
            "in_flight": 0, "registrations": 0, "dims": dict(dims),
        })
        self._queued.setdefault(stream, set())
        entry["registrations"] += 1
        entry.update({k: v for k, v in (info or {}).items() if isinstance(v, (str, int, float, bool))})
        self._checkpoint()
        return {"group": group_name, "version": group.version, "last_seq": entry["last_seq"],
                "run_path": self.run_path}

    # -- the SG protocol ---------------------------------------------------------------
    def _reconcile(self, stream: str, entry: Dict[str, Any], acked_seq: int) -> None:
        """Pushes up to ``acked_seq`` were all acknowledged to the stream; those this server has
        not applied were applied before a crash and missing from the checkpoint: count them lost."""
        if acked_seq <= entry["last_seq"]:
            return
        known = [s for s in entry["ahead"] if s <= acked_seq] + [s for s in self._queued[stream] if s <= acked_seq]
        lost = int(acked_seq - entry["last_seq"] - len(set(known)))
        entry["lost"] += lost
        self.lost_pushes += lost
        entry["ahead"] = [s for s in entry["ahead"] if s > acked_seq]
        entry["last_seq"] = int(acked_seq)
        self._advance(entry)

    @staticmethod
    def _advance(entry: Dict[str, Any]) -> None:
        ahead = set(entry["ahead"])
        while entry["last_seq"] + 1 in ahead:
            entry["last_seq"] += 1
            ahead.discard(entry["last_seq"])
        entry["ahead"] = sorted(ahead)

    def _seen(self, stream: str, entry: Dict[str, Any], seq: int) -> bool:
        return seq <= entry["last_seq"] or seq in entry["ahead"] or seq in self._queued[stream]

    async def push(self, stream: str, seq: int, acked_seq: int, in_flight: int, *targets: Any) -> Dict[str, Any]:
        """Train the stream's group on one step's targets (``SGTargets.parts()``) unless ``seq`` was
        applied (or queued) already.

        ``acked_seq``: every push of the stream up to it was acknowledged; ``in_flight``: the
        stream's pushes not yet acknowledged (for ``state``). The reply comes once
        the push is applied, with the version it produced. Pushes that queue up while an update
        runs are coalesced (up to ``sg.coalesce_max`` per group) into the next update.
        """
        entry = self.streams.get(stream)
        if entry is None:
            return {"error": f"stream '{stream}' is not registered", "applied": False, "seq": seq}
        entry["in_flight"] = int(in_flight)
        self._reconcile(stream, entry, int(acked_seq))
        if self._seen(stream, entry, seq):
            entry["duplicates"] += 1
            self.duplicates += 1
            return {"applied": False, "seq": seq, "version": self.groups[entry["group"]].version}
        done = asyncio.get_running_loop().create_future()
        self._queued[stream].add(seq)
        self._queue.append(_Push(stream, int(seq), SGTargets.from_parts(*targets), done))
        self._last_push[stream] = time.monotonic()
        self._arrived.set()
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        return await done

    def _room(self) -> int:
        """Pushes the next update may take: at most ``coalesce_max``, never past a checkpoint boundary."""
        room = self.every_pushes - self.since_ckpt if self.every_pushes > 0 else self.coalesce_max
        return max(1, min(self.coalesce_max, room))

    async def _gather(self, group: str) -> None:
        """Wait (at most ``coalesce_wait_s``) until every stream of ``group`` that pushed in the last
        ``ACTIVE_S`` seconds has a push queued, or the next update is full."""
        deadline = time.monotonic() + self.coalesce_wait_s
        while True:
            now = time.monotonic()
            active = {n for n, t in self._last_push.items() if now - t < ACTIVE_S and self.streams[n]["group"] == group}
            queued = [p.stream for p in self._queue if self.streams[p.stream]["group"] == group]
            if now >= deadline or active <= set(queued) or len(queued) >= self._room():
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - now)
            except asyncio.TimeoutError:
                return

    async def _drain(self) -> None:
        """Group commit: apply the queued pushes, one update per group for all that have arrived."""
        while self._queue:
            for _ in range(2):  # pushes Ray delivered while the last update ran join this one
                await asyncio.sleep(0)
            group = self.streams[self._queue[0].stream]["group"]
            if self.coalesce_wait_s > 0:
                await self._gather(group)
            batch = [p for p in self._queue if self.streams[p.stream]["group"] == group][:self._room()]
            taken = set(map(id, batch))
            self._queue = [p for p in self._queue if id(p) not in taken]
            try:
                losses = self.groups[group].update([p.targets for p in batch])
            except Exception as exc:  # a bad push must not take the server down with it
                for p in batch:
                    self._queued[p.stream].discard(p.seq)
                    p.done.set_result({"error": f"update failed: {exc}", "applied": False, "seq": p.seq})
                continue
            version = self.groups[group].version
            for p in batch:
                entry = self.streams[p.stream]
                self._queued[p.stream].discard(p.seq)
                if p.seq > entry["last_seq"]:
                    entry["ahead"].append(p.seq)
                    self._advance(entry)
                entry["pushes"] += 1
            self.pushes += len(batch)
            self.updates += 1
            self.coalesced += len(batch) - 1
            self.since_ckpt += len(batch)
            if self.since_ckpt >= self.every_pushes or (
                    self.every_s > 0 and time.monotonic() - self.last_ckpt >= self.every_s):
                self._checkpoint()
            for p in batch:
                p.done.set_result({"applied": True, "seq": p.seq, "version": version, "losses": losses,
                                   "coalesced": len(batch)})

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
            "transport": self.cfg.sg.transport,
            "node": socket.gethostname(),
            "pid": os.getpid(),
            "uptime_s": time.time() - self.started,
            "groups": {g: {"version": sg.version, "dims": sg.dims,
                           "streams": sorted(n for n, s in self.streams.items() if s["group"] == g)}
                       for g, sg in self.groups.items()},
            "streams": {n: dict(s) for n, s in self.streams.items()},
            "pushes": self.pushes,
            "updates": self.updates,
            "coalesced": self.coalesced,
            "queued": len(self._queue),
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
            "streams": {n: {k: (list(v) if isinstance(v, list) else v) for k, v in s.items()}
                        for n, s in self.streams.items()},
            "pushes": self.pushes, "updates": self.updates, "coalesced": self.coalesced,
            "duplicates": self.duplicates, "lost_pushes": self.lost_pushes,
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
        self.streams = {n: {"ahead": [], **s} for n, s in saved["streams"].items()}
        self._queued = {n: set() for n in self.streams}
        for k in ("pushes", "updates", "coalesced", "duplicates", "lost_pushes", "restarts", "checkpoints"):
            setattr(self, k, int(saved.get(k, 0)))

    def stop(self) -> str:
        """The last checkpoint before ``sharedsg stop`` kills the actor."""
        return self._checkpoint()


def server_actor(cfg, run_path: str, *, detached: bool, node_id: Optional[str] = None,
                 options: Optional[Dict[str, Any]] = None):
    """Start the experiment's named ``SGServer`` (``sgserver:<experiment>`` in namespace ``sharedsg``);
    ``options`` (``num_cpus``/``num_gpus``/``scheduling_strategy`` of its placement) win over the defaults."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from sharedsg.runtime import server_name

    opts: Dict[str, Any] = dict(
        name=server_name(cfg.experiment.name), namespace=NAMESPACE,
        max_restarts=int(cfg.resources.max_restarts), max_task_retries=-1,
        num_cpus=float(cfg.resources.server_cpus),
    )
    if detached:
        opts["lifetime"] = "detached"
    if node_id:  # beside the driver, so the checkpoints land in the driver's run directory
        opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=True)
    opts.update(options or {})
    plain = OmegaConf.to_container(cfg, resolve=True)
    return ray.remote(SGServer).options(**opts).remote(plain, str(run_path))
