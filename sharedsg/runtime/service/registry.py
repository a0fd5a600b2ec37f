"""``SGRegistry``: the experiment's SG service as ``attach``, ``status`` and ``stop`` find it.

A small named actor, ``sgserver:<experiment>`` in namespace ``sharedsg`` (detached when
``experiment.attachable``), that holds no SG state itself: it starts one
:class:`~sharedsg.runtime.service.server.SGGroupServer` per SG group (when the driver places it, else
when the first stream of that group registers), hands the stream the group actor's handle
(pushes and pulls go straight to it, never through here), and gathers the groups' state for
``status`` and TensorBoard.

The group actors are owned by the registry, so they end with it (``sharedsg stop``, or the run
ending); Ray restarts a crashed group actor on its own. The registry checkpoints its groups
(name, model) and streams into ``checkpoints/server.json``; when Ray restarts the registry it
starts the groups again, each restoring its own checkpoint, and streams whose group actor
went away register again.

The registry's process imports no torch (nor does this module, nor :mod:`.server` at its top):
it starts group actors by class and passes plain dicts, so it costs a Ray worker (~70 MB PSS),
not a torch process (~200 MB, and ~2.5 s of CPU to boot).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any, Dict, List, Optional

import ray
from omegaconf import OmegaConf

from sharedsg.errors import UserError
from sharedsg.runtime import (NAMESPACE, SERVER_PREFIX, current_args, group_actor_name, server_name, with_defaults,
                              was_reconstructed)
from sharedsg.runtime.service import checkpoint
from sharedsg.runtime.service.server import group_actor

STATE_TIMEOUT_S = 10.0
# summed over the groups in ``state``
TOTALS = ("pushes", "trained", "updates", "coalesced", "duplicates", "lost_pushes", "overflow", "restarts",
          "checkpoints", "publishes", "pulls", "queued", "queue", "ingest_per_s", "updates_per_s")


async def _get(ref: ray.ObjectRef, timeout: float = STATE_TIMEOUT_S) -> Any:
    async def wait() -> Any:
        return await ref
    return await asyncio.wait_for(wait(), timeout)


class SGRegistry:
    """The plain class; :func:`registry_actor` wraps it in ``ray.remote`` (an async actor)."""

    def __init__(self, cfg: Dict[str, Any], run_path: str, group_options: Optional[Dict[str, Any]] = None) -> None:
        self.group_options = dict(group_options or {})
        self.placed: Dict[str, Dict[str, Any]] = {}  # per-group Ray options given by place()
        self.groups: Dict[str, Any] = {}  # group -> its actor
        self.models: Dict[str, Dict[str, Any]] = {}  # group -> model config it was started with
        cfg, run_path = current_args(cfg, run_path)  # a restart after a reset: the run it serves now
        self._begin(cfg, run_path)
        saved = checkpoint.load_json(self.ckpt_path)
        if saved is not None:
            self.models, self.streams = dict(saved["groups"]), dict(saved["streams"])
            self.restarts, self.pushes = int(saved.get("restarts", 0)), int(saved.get("pushes", 0))
            for g, model in self.models.items():  # each restores its own checkpoint
                self.groups[g] = self._start(g, model)
        if was_reconstructed():
            self.restarts += 1

    def _begin(self, cfg: Dict[str, Any], run_path: str) -> None:
        """The registry's record of one run (:meth:`reset` starts it again): no streams, no restarts."""
        self.plain = cfg
        self.cfg = with_defaults(cfg)
        self.run_path = str(run_path)
        self.ckpt_path = checkpoint.server_checkpoint(self.run_path)
        self.streams: Dict[str, str] = {}  # stream -> group
        self.restarts = 0
        self.pushes = 0  # the groups' total at the last state/checkpoint (for the checkpoint file)
        self.started = time.time()

    async def reset(self, cfg: Dict[str, Any], run_path: str) -> Dict[str, int]:
        """Serve another run of the experiment (its next seed, ``RayBackend.reset``) with the group
        actors there are: each starts over (:meth:`SGGroupServer.reset`), and streams register afresh.
        Group -> its version."""
        groups = list(self.groups)
        versions = await asyncio.gather(*[self.groups[g].reset.remote(cfg, str(run_path)) for g in groups])
        self._begin(cfg, run_path)
        return dict(zip(groups, versions))

    # -- groups ----------------------------------------------------------------------------
    def _start(self, group: str, model: Dict[str, Any]):
        """The group's actor: the one alive under its name (after a registry restart), else a new one."""
        name = group_actor_name(self.cfg.experiment.name, group)
        options = dict(self.group_options, **self.placed.get(group, {}))
        for _ in range(40):
            try:
                return ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                pass
            try:
                return group_actor(self.plain, group, self.run_path, model=model, options=options)
            except ValueError:  # the name is still held by an actor that is going away
                time.sleep(0.25)
        raise RuntimeError(f"cannot start SG group actor '{name}'")

    def _save(self) -> None:
        checkpoint.save_json(self.ckpt_path, {"format": 3, "groups": self.models, "streams": self.streams,
                                              "restarts": self.restarts, "pushes": self.pushes})

    def place(self, group: str, options: Dict[str, Any]) -> None:
        """Start ``group``'s actor with these Ray options (a placement group's ``scheduling_strategy``,
        ``num_gpus``) and the run's model, without waiting for it: its process boots while the streams'
        do (call before the group's first stream registers)."""
        self.placed[group] = dict(options)
        if group not in self.groups:
            self.models[group] = OmegaConf.to_container(self.cfg.model, resolve=True)
            self.groups[group] = self._start(group, self.models[group])

    async def register(self, stream: str, group: str, dims: Dict[str, int], model: Dict[str, Any],
                       info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Add (or re-add) ``stream`` to SG group ``group`` (decided on the driver), starting the group's
        actor on first use. The reply: the group actor's handle (``actor``), its version and the
        stream's sequence watermark / high mark there; ``{"error": ...}`` when the dimensions do not fit."""
        if group not in self.groups:
            self.models[group] = dict(model)
            self.groups[group] = self._start(group, model)
        actor = self.groups[group]
        try:
            reply = await actor.register.remote(stream, dims, info)
        except ray.exceptions.ActorDiedError:  # adopted while it was going away (a registry restart)
            await asyncio.sleep(0.5)
            actor = self.groups[group] = self._start(group, self.models[group])
            reply = await actor.register.remote(stream, dims, info)
        if "error" in reply:
            return reply
        if self.streams.get(stream) != group:
            self.streams[stream] = group
            self._save()
        return dict(reply, actor=actor, run_path=self.run_path)

    async def group(self, name: str):
        """The actor of group ``name`` (for a stream whose group actor went away and came back)."""
        return self.groups[name]

    # -- reporting -------------------------------------------------------------------------
    def config(self) -> Dict[str, Any]:
        return OmegaConf.to_container(self.cfg, resolve=True)

    def ping(self) -> bool:
        return True

    async def versions(self) -> Dict[str, int]:
        states = await self._group_states()
        return {g: s["version"] for g, s in states.items() if "error" not in s}

    async def _group_states(self) -> Dict[str, Dict[str, Any]]:
        names = list(self.groups)
        replies = await asyncio.gather(*[_get(self.groups[g].state.remote()) for g in names],
                                       return_exceptions=True)
        return {g: (r if not isinstance(r, BaseException) else {"error": type(r).__name__})
                for g, r in zip(names, replies)}

    async def state(self) -> Dict[str, Any]:
        """Every group's state (``groups``), every stream's (``streams``) and the totals over the groups."""
        groups = await self._group_states()
        live = [s for s in groups.values() if "error" not in s]
        out: Dict[str, Any] = {
            "experiment": self.cfg.experiment.name, "namespace": NAMESPACE, "run_path": self.run_path,
            "attachable": bool(self.cfg.experiment.attachable), "transport": self.cfg.sg.transport,
            "policy": "exact" if self.cfg.experiment.synchronous else self.cfg.sg.policy,
            "node": socket.gethostname(), "pid": os.getpid(), "uptime_s": time.time() - self.started,
            "registry_restarts": self.restarts, "checkpoint_every_pushes": int(self.cfg.sg.checkpoint_every_pushes),
        }
        for key in TOTALS:
            out[key] = sum(s.get(key, 0) for s in live)
        p99 = [s["pull_p99_ms"] for s in live if s.get("pull_p99_ms") is not None]
        p50 = [s["pull_p50_ms"] for s in live if s.get("pull_p50_ms") is not None]
        lags = [s["lag_mean"] for s in live if s.get("lag_mean") is not None]
        out.update(pull_p50_ms=max(p50) if p50 else None, pull_p99_ms=max(p99) if p99 else None,
                   lag_mean=sum(lags) / len(lags) if lags else None,
                   lag_max=max((s["lag_max"] for s in live if s.get("lag_max") is not None), default=None),
                   buffer_fill=max((s["buffer_fill"] for s in live), default=0.0))
        out["groups"] = {g: dict({k: v for k, v in s.items() if k != "streams"},
                                 streams=sorted(n for n, gg in self.streams.items() if gg == g))
                         for g, s in groups.items()}
        out["streams"] = {n: st for s in live for n, st in s["streams"].items()}
        out["scalars"] = self._scalars(out)
        self.pushes = out["pushes"]
        return out

    @staticmethod
    def _scalars(state: Dict[str, Any]) -> Dict[str, float]:
        """The service's TensorBoard scalars (``server/`` tags) beyond the counters."""
        keys = {"ingest_per_s": "server/ingest_per_s", "updates_per_s": "server/updates_per_s",
                "buffer_fill": "server/buffer_fill", "overflow": "server/overflow",
                "pull_p50_ms": "server/pull_p50_ms", "pull_p99_ms": "server/pull_p99_ms",
                "lag_mean": "server/version_lag_mean", "lag_max": "server/version_lag_max",
                "duplicates": "server/duplicates", "queued": "server/queued"}
        return {tag: float(state[k]) for k, tag in keys.items() if state.get(k) is not None}

    # -- checkpoints and stop ----------------------------------------------------------------
    async def checkpoint(self) -> str:
        """Every group checkpoints (off its serving path); then the registry's own file."""
        await asyncio.gather(*[_get(a.checkpoint.remote(), 60) for a in self.groups.values()],
                             return_exceptions=True)
        try:
            await self.state()  # the totals for the checkpoint file
        except Exception:
            pass
        self._save()
        return str(self.ckpt_path)

    async def stop(self) -> List[str]:
        """The last checkpoint of every group, then the group actors end (before ``sharedsg stop``
        kills the registry)."""
        paths = await asyncio.gather(*[_get(a.stop.remote(), 60) for a in self.groups.values()],
                                     return_exceptions=True)
        self._save()
        for a in self.groups.values():
            ray.kill(a, no_restart=True)
        return [str(self.ckpt_path)] + [p for p in paths if isinstance(p, str)]


def registry_actor(cfg, run_path: str, *, detached: bool, node_id: Optional[str] = None,
                   group_options: Optional[Dict[str, Any]] = None):
    """Start the experiment's SG service: its named ``SGRegistry`` (``sgserver:<experiment>`` in
    namespace ``sharedsg``), which starts one :func:`~sharedsg.runtime.service.server.group_actor` per group
    as streams register (``group_options`` for each). The registry takes no CPU of its own
    (``resources.server_cpus`` is each group actor's)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    options: Dict[str, Any] = dict(
        name=server_name(cfg.experiment.name), namespace=NAMESPACE, num_cpus=0,
        max_restarts=int(cfg.resources.max_restarts), max_task_retries=-1,
    )
    if detached:
        options["lifetime"] = "detached"
    group_options = dict(group_options or {})
    if node_id:  # beside the driver, so the checkpoints land in the driver's run directory
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=True)
        group_options.setdefault("scheduling_strategy", NodeAffinitySchedulingStrategy(node_id=node_id, soft=True))
    plain = OmegaConf.to_container(cfg, resolve=True)
    return ray.remote(SGRegistry).options(**options).remote(plain, str(run_path), group_options)


def experiments() -> List[str]:
    """Names of the experiments whose server runs on the connected cluster."""
    names = ray.util.list_named_actors(all_namespaces=True)
    return sorted(a["name"][len(SERVER_PREFIX):] for a in names
                  if a.get("namespace") == NAMESPACE and a["name"].startswith(SERVER_PREFIX))


def find_server(experiment: str):
    try:
        return ray.get_actor(server_name(experiment), namespace=NAMESPACE)
    except ValueError:
        running = experiments()
        listed = ", ".join(running) if running else "none"
        raise UserError(f"no experiment '{experiment}' in Ray namespace '{NAMESPACE}' "
                        f"(actor '{server_name(experiment)}'); experiments running there: {listed}") from None

