"""``SGGroupServer``: one Ray actor per SG sharing group — ingest apart from learning.

The SG service of an experiment is a small named registry (:mod:`.registry`,
``sgserver:<experiment>``) and one of these actors per group (``sggroup:<experiment>:<group>``),
each on its own CPU (``resources.server_cpus``) or GPU (``resources.server_gpus``). The group of
each stream is decided on the driver (:func:`sharedsg.harness.stream.group_of`).

Serving path (the actor's event loop; answers in milliseconds whatever an update costs):

- ``register``: a stream's dimensions are checked against the group; the reply carries the
  group's sequence watermark of that stream, so a stream restarted without a checkpoint
  continues after it (nothing it sends is dropped as a duplicate);
- ``push``: a step's targets are deduplicated (the :class:`~sharedsg.learn.ledger.PushLedger`)
  and acknowledged as soon as they are queued; the stream's acknowledgement watermark, sent
  along, counts pushes lost in a crash;
- ``pull``: the newest weights by reference: ``ray.put`` once per version, so every stream on a
  node fetches one copy from the object store;
- ``predict`` (the ``rpc`` transport): with ``exact`` it first waits for every accepted push to
  be trained on (read-your-writes: the in-process reference);
- ``state``: counts and rates for ``sharedsg status`` and TensorBoard.

Learning path (a thread; torch releases the GIL): the Eq. 11 update on up to
``sg.coalesce_max`` accepted target sets at a time (:class:`~sharedsg.learn.ingest.Ingest`:
``exact`` FIFO and lossless with back-pressure, ``buffered`` newest first with evictions
counted), then a weight snapshot for ``pull`` and, every ``sg.checkpoint_every_pushes`` trained
pushes or ``sg.checkpoint_every_s`` seconds, an atomic checkpoint (the same thread: off the
serving path). An update never crosses a checkpoint boundary.

Fault tolerance: the checkpoint holds the weights, optimiser, version and, per stream, the
ledger of pushes *consumed* (trained on, or evicted and counted). When Ray restarts the actor it
reloads it, moves the version ``checkpoint_every_pushes + 1`` ahead (versions never go back),
and counts the pushes a stream saw acknowledged but the checkpoint lacks as ``lost_pushes``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Tuple

import ray
from omegaconf import OmegaConf

from sharedsg.config import ModelConfig
from sharedsg.errors import DimensionMismatch
from sharedsg.learn.ingest import Ingest, Pending
from sharedsg.learn.ledger import PushLedger
from sharedsg.runtime import NAMESPACE, current_args, group_actor_name, with_defaults, was_reconstructed
from sharedsg.runtime.service import checkpoint

if TYPE_CHECKING:  # torch loads in the group's own process (``SGGroupServer.__init__``), not here
    import torch

    from sharedsg.learn.types import SGState

RATE_WINDOW_S = 10.0  # ingest and update rates in ``state`` are over this window
SAMPLES = 1024  # pull latencies and version lags kept for the percentiles in ``state``


def percentile(values: List[float], q: float) -> Optional[float]:
    """The ``q``-quantile of ``values`` (the nearest rank, no interpolation); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class _Rate:
    """Events per second over the last ``RATE_WINDOW_S`` seconds."""

    def __init__(self) -> None:
        self.times: Deque[Tuple[float, int]] = deque(maxlen=4096)

    def add(self, n: int = 1) -> None:
        self.times.append((time.monotonic(), n))

    def per_s(self, started: float) -> float:
        now = time.monotonic()
        window = min(RATE_WINDOW_S, max(now - started, 1e-3))
        return sum(n for t, n in self.times if now - t <= window) / window


class SGGroupServer:
    """The plain class; :func:`group_actor` wraps it in ``ray.remote`` (an async actor)."""

    def __init__(self, cfg: Dict[str, Any], group: str, model: Dict[str, Any], run_path: str) -> None:
        # torch and the SG learner load here, in the group's process: the registry imports this module
        # (to start group actors) and stays torch-free
        import torch

        torch.set_num_threads(1)
        self.group = group
        self.model = model
        self.device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self._lock = threading.Lock()  # ingest, ledgers, counters
        self._work = threading.Condition(self._lock)  # the learner waits here for targets
        self._model_lock = threading.Lock()  # the SGLearner: update, predict, state_dict
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._changed: Optional[asyncio.Event] = None  # set (on the loop) after every update
        cfg, run_path = current_args(cfg, run_path)  # a restart after a reset: the run it serves now
        self._begin(cfg, run_path, reconstructed=was_reconstructed())

    def _begin(self, cfg: Dict[str, Any], run_path: str, reconstructed: bool) -> None:
        """Everything of one run of the group (:meth:`reset` starts it again): the SG learner of the
        run's seed at version 0, empty ledgers and counters, its checkpoint if there is one (then, or
        when Ray ``reconstructed`` the actor, a restart), and the learner thread."""
        from sharedsg.learn.sg import SGLearner

        self.cfg = with_defaults(cfg)
        self.run_path = str(run_path)
        self.ckpt_path = checkpoint.group_checkpoint(self.run_path, self.group)
        sg = self.cfg.sg
        self.policy = "exact" if self.cfg.experiment.synchronous else str(sg.policy)
        self.every_pushes = int(sg.checkpoint_every_pushes)
        self.every_s = float(sg.checkpoint_every_s)
        self.coalesce_max = int(sg.coalesce_max)
        # a group started by the public API (sharedsg.api) names its activations' widths in ``sg_dims``
        model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig),
                                    {k: v for k, v in self.model.items() if k != "sg_dims"})
        self.sg = SGLearner(model_cfg, sg, seed=int(self.cfg.experiment.seed), device=self.device,
                            dims=self.model.get("sg_dims"))
        self.ingest = Ingest(self.policy, int(sg.buffer_size))
        self.streams: Dict[str, Dict[str, Any]] = {}
        self.accepted: Dict[str, PushLedger] = {}  # deduplication at ingest
        self.consumed: Dict[str, PushLedger] = {}  # trained on or evicted: what a checkpoint holds
        self.settled: Dict[str, PushLedger] = {}  # queued or refused by this incarnation: the order of ingest
        self.reorder_wait_s = float(sg.reorder_wait_s)
        self.counts = {k: 0 for k in ("pushes", "trained", "updates", "coalesced", "duplicates", "lost_pushes",
                                      "overflow", "restarts", "checkpoints", "publishes", "pulls", "overtaking")}
        self.since_ckpt = 0
        self.last_ckpt = time.monotonic()
        self.started = time.monotonic()
        self.losses: Dict[str, float] = {}
        self.ingest_rate, self.update_rate = _Rate(), _Rate()
        self.pull_s: Deque[float] = deque(maxlen=SAMPLES)
        self.lags: Deque[float] = deque(maxlen=SAMPLES)
        self._learning = 0  # target sets in the update that runs now
        self._busy = False  # the learner is between taking a batch and its checkpoint / notification
        self._stopping = False
        self._published: Optional[Tuple[int, ray.ObjectRef]] = None
        saved = checkpoint.load(self.ckpt_path)
        if saved is not None:
            self._restore(saved)
        if reconstructed or saved is not None:
            self.counts["restarts"] += 1
            self.sg.version += self.every_pushes + 1  # never behind any version served before the crash
        self.version = self.sg.version
        self._snapshot: SGState = self.sg.state()
        self._learner = threading.Thread(target=self._learn, name=f"sg-learner-{self.group}", daemon=True)
        self._learner.start()

    async def reset(self, cfg: Dict[str, Any], run_path: str) -> int:
        """Serve another run (the next seed of an experiment, ``RayBackend.reset``) in this process:
        once every accepted push is trained on, the learner thread ends and the group starts over
        as a new actor of ``cfg`` and ``run_path`` would (:meth:`_begin`); streams register afresh.
        Its version (0: the run has no checkpoint yet)."""
        await self._until(self._idle)
        with self._lock:
            self._stopping = True
            self._work.notify_all()
        await asyncio.get_running_loop().run_in_executor(None, self._learner.join)
        self._begin(cfg, run_path, reconstructed=False)
        return self.version

    # -- serving path: the event loop ------------------------------------------------------
    def _bind_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._changed = asyncio.Event()

    async def _until(self, ready, limit_s: Optional[float] = None) -> None:
        """Wait (without blocking the loop) until ``ready()`` holds, or ``limit_s`` has passed;
        rechecked after every update and every queued push."""
        self._bind_loop()
        deadline = None if limit_s is None else time.monotonic() + limit_s
        while not ready():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def _idle(self) -> bool:
        with self._lock:
            return len(self.ingest) == 0 and not self._busy

    async def register(self, stream: str, dims: Dict[str, int], info: Optional[Dict[str, Any]] = None
                       ) -> Dict[str, Any]:
        """Add (or re-add, after a restart) a stream; ``{"error": ...}`` when its dimensions do not fit.
        ``high``: the largest sequence number of the stream this group has accepted."""
        self._bind_loop()
        try:
            self.sg.check_dims(dims)
        except DimensionMismatch as exc:
            return {"error": f"stream '{stream}' does not fit SG group '{self.group}' of experiment "
                             f"'{self.cfg.experiment.name}': {exc}"}
        info = dict(info or {})
        with self._lock:
            entry = self.streams.setdefault(stream, {
                "pushes": 0, "duplicates": 0, "lost": 0, "in_flight": 0, "registrations": 0,
                "resumed_from_server": 0, "lag": 0.0, "dims": dict(dims)})
            self.accepted.setdefault(stream, PushLedger())
            self.consumed.setdefault(stream, PushLedger())
            self.settled.setdefault(stream, self.accepted[stream].copy())
            entry["registrations"] += 1
            if entry["registrations"] > 1 and info.get("checkpoint_seq") is None:
                entry["resumed_from_server"] += 1  # restarted without a checkpoint: continues after ``high``
            entry.update({k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))})
            ledger = self.accepted[stream]
            return {"group": self.group, "version": self.version, "watermark": ledger.watermark,
                    "high": ledger.high, "policy": self.policy}

    async def push(self, stream: str, seq: int, meta: Dict[str, Any], *parts: Any) -> Dict[str, Any]:
        """Accept one step's targets (``SGTargets.parts()``) unless ``seq`` was accepted already;
        the reply comes as soon as they are queued (``exact``: once there is room in the queue).

        ``meta``: ``acked`` (every push of the stream up to it was acknowledged), ``in_flight``,
        ``before`` (the stream's pushes sent before this one and not acknowledged: an async actor may
        start its calls in any order, so this push waits until those are queued, at most
        ``sg.reorder_wait_s``), ``lag`` (the stream's version lag) and ``pull_s`` (its pull latencies
        since the last push).
        """
        self._bind_loop()
        seq = int(seq)
        before = [int(s) for s in meta.get("before", ())]
        if not self._settled(stream, before):
            self.counts["overtaking"] += 1
            await self._until(lambda: self._settled(stream, before), self.reorder_wait_s)
        with self._lock:
            entry = self.streams.get(stream)
            if entry is None:
                return {"error": f"stream '{stream}' is not registered with SG group '{self.group}'",
                        "applied": False, "seq": seq}
            self._note(stream, entry, meta)
            if not self.accepted[stream].mark(seq):
                entry["duplicates"] += 1
                self.counts["duplicates"] += 1
                self.settled[stream].mark(seq)
                return {"applied": False, "seq": seq, "version": self.version, "losses": self.losses}
        item = Pending(stream, seq, self.sg.targets(parts))
        if self.ingest.full():
            await self._until(lambda: not self.ingest.full())
        with self._lock:
            self.settled[stream].mark(seq)
            self._changed.set()  # a push that overtook this one may go on
            evicted = self.ingest.put(item)
            if evicted is not None:
                self.counts["overflow"] += 1
                self.consumed[evicted.stream].mark(evicted.seq)
            entry["pushes"] += 1
            self.counts["pushes"] += 1
            self.ingest_rate.add()
            self._work.notify()
            return {"applied": True, "seq": seq, "version": self.version, "losses": self.losses}

    def _settled(self, stream: str, seqs: List[int]) -> bool:
        """Every one of ``seqs`` (the stream's) is queued or refused as a duplicate by this incarnation."""
        with self._lock:
            ledger = self.settled.get(stream)
            return ledger is None or all(ledger.done(s) for s in seqs)

    def _note(self, stream: str, entry: Dict[str, Any], meta: Dict[str, Any]) -> None:
        """The stream's report: reconcile its acknowledgement watermark, keep its lag and pull latencies."""
        entry["in_flight"] = int(meta.get("in_flight", 0))
        if meta.get("lag") is not None:
            entry["lag"] = float(meta["lag"])
            self.lags.append(float(meta["lag"]))
        self.pull_s.extend(float(s) for s in meta.get("pull_s", ()))
        acked = int(meta.get("acked", 0))
        lost = self.accepted[stream].missing(acked)
        if lost:  # acknowledged before a crash, missing from the checkpoint
            self.accepted[stream].skip_to(acked)
            for s in lost:
                self.consumed[stream].mark(s)
            entry["lost"] += len(lost)
            self.counts["lost_pushes"] += len(lost)

    def pull(self, since_version: int = -1) -> Optional[Dict[str, Any]]:
        """``{"version", "ref"}`` when the group's weights are newer than ``since_version``, else None.
        ``ref`` is an ``ObjectRef`` to an :class:`SGState`, put once per version."""
        snap = self._snapshot
        if snap.version <= since_version:
            return None
        self.counts["pulls"] += 1
        if self._published is None or self._published[0] != snap.version:
            self._published = (snap.version, ray.put(snap))
            self.counts["publishes"] += 1
        return {"version": snap.version, "ref": self._published[1]}

    async def predict(self, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Synthetic gradients (the ``rpc`` transport); with ``exact`` after every accepted push is trained on."""
        if self.policy == "exact":
            await self._until(self._idle)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._predict, h, y)

    def _predict(self, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        with self._model_lock:
            return self.sg.predict(h, y)

    async def drain(self) -> int:
        """Wait until every accepted push is trained on (``buffered``: taken or evicted); the version."""
        await self._until(self._idle)
        return self.version

    # -- learning path: a thread --------------------------------------------------------------
    def _room(self) -> int:
        """Sets the next update may take: at most ``coalesce_max``, never past a checkpoint boundary."""
        room = self.every_pushes - self.since_ckpt if self.every_pushes > 0 else self.coalesce_max
        return max(1, min(self.coalesce_max, room))

    def _due(self) -> bool:
        return self.since_ckpt > 0 and (
            (self.every_pushes > 0 and self.since_ckpt >= self.every_pushes)
            or (self.every_s > 0 and time.monotonic() - self.last_ckpt >= self.every_s))

    def _learn(self) -> None:
        while True:
            with self._lock:
                while not len(self.ingest) and not self._stopping and not self._due():
                    self._work.wait(timeout=max(0.05, min(1.0, self.every_s or 1.0)))
                if self._stopping:
                    return
                batch = self.ingest.take(self._room())
                self._learning = len(batch)
                self._busy = True
            if batch:
                self._update(batch)
            if self._due():
                self._checkpoint()
            with self._lock:
                self._busy = False
            self._notify()

    def _update(self, batch: List[Pending]) -> None:
        """Eq. 11 on the taken target sets (:meth:`SGLearner.update`), then a weight snapshot for ``pull``."""
        try:
            with self._model_lock:
                losses = self.sg.update([p.targets for p in batch])
                snap = self.sg.state()
        except Exception as exc:  # a bad push must not take the group down with it
            print(f"sharedsg: SG group '{self.group}': update failed: {exc}", flush=True)
            losses, snap = None, None
        with self._lock:
            for p in batch:
                self.consumed[p.stream].mark(p.seq)
            self._learning = 0
            self.since_ckpt += len(batch)
            if snap is None:
                return
            self.counts["updates"] += 1
            self.counts["trained"] += len(batch)
            self.counts["coalesced"] += len(batch) - 1
            self.update_rate.add()
            self.losses = losses
            self._snapshot = snap
            self.version = snap.version

    def _notify(self) -> None:
        loop, changed = self._loop, self._changed
        if loop is not None and changed is not None and not loop.is_closed():
            loop.call_soon_threadsafe(changed.set)

    # -- checkpoints ----------------------------------------------------------------------------
    def _checkpoint(self) -> str:
        with self._model_lock:
            weights = self.sg.state_dict()
        with self._lock:
            payload = {
                "format": 2, "group": self.group, "model": self.model, "sg": weights,
                "streams": {n: dict(s) for n, s in self.streams.items()},
                "consumed": {n: l.state_dict() for n, l in self.consumed.items()},
                # accepted pushes still queued or in an update are not in ``consumed``: after a
                # restart they count as lost, so they are left out of the accepted count here
                "counts": dict(self.counts, checkpoints=self.counts["checkpoints"] + 1,
                               pushes=self.counts["pushes"] - len(self.ingest) - self._learning),
            }
            self.counts["checkpoints"] += 1
            self.since_ckpt = 0
            self.last_ckpt = time.monotonic()
        checkpoint.save(self.ckpt_path, payload)
        return str(self.ckpt_path)

    def _restore(self, saved: Dict[str, Any]) -> None:
        self.sg.load_state_dict(saved["sg"])
        self.streams = {n: dict(s) for n, s in saved["streams"].items()}
        self.consumed = {n: PushLedger.from_state(s) for n, s in saved["consumed"].items()}
        self.accepted = {n: l.copy() for n, l in self.consumed.items()}
        self.settled = {n: l.copy() for n, l in self.consumed.items()}
        self.counts.update({k: int(v) for k, v in saved["counts"].items() if k in self.counts})

    async def checkpoint(self) -> str:
        """A checkpoint now, written by a worker thread (the loop keeps serving)."""
        return await asyncio.get_running_loop().run_in_executor(None, self._checkpoint)

    async def stop(self) -> str:
        """The last checkpoint; the learner thread ends."""
        path = await self.checkpoint()
        with self._lock:
            self._stopping = True
            self._work.notify_all()
        return path

    # -- reporting --------------------------------------------------------------------------------
    def ping(self) -> bool:
        return True

    def state(self) -> Dict[str, Any]:
        with self._lock:
            pulls, lags = list(self.pull_s), list(self.lags)
            streams = {}
            for n, s in self.streams.items():
                ledger = self.accepted[n]
                streams[n] = dict(s, group=self.group, last_seq=ledger.watermark, ahead=sorted(ledger.ahead))
            p50, p99 = percentile(pulls, 0.5), percentile(pulls, 0.99)
            return {
                "group": self.group, "actor": group_actor_name(self.cfg.experiment.name, self.group),
                "node": socket.gethostname(), "pid": os.getpid(), "device": self.device, "policy": self.policy,
                "version": self.version, "dims": self.sg.dims, "streams": streams, **self.counts,
                "queued": len(self.ingest), "learning": self._learning, "buffer_size": self.ingest.capacity,
                "buffer_fill": len(self.ingest) / self.ingest.capacity,
                "queue": sum(int(s["in_flight"]) for s in self.streams.values()),
                "ingest_per_s": self.ingest_rate.per_s(self.started),
                "updates_per_s": self.update_rate.per_s(self.started),
                "pull_p50_ms": None if p50 is None else 1e3 * p50, "pull_p99_ms": None if p99 is None else 1e3 * p99,
                "lag_mean": sum(lags) / len(lags) if lags else None, "lag_max": max(lags) if lags else None,
                "checkpoint_every_pushes": self.every_pushes,
            }


def group_actor(cfg, group: str, run_path: str, *, model: Optional[Dict[str, Any]] = None,
                options: Optional[Dict[str, Any]] = None):
    """Start the named ``SGGroupServer`` of ``group`` (``sggroup:<experiment>:<group>``): ``resources.server_cpus``
    CPUs and ``resources.server_gpus`` GPUs, restarted by Ray on a crash. ``options`` (e.g. a placement
    group's ``scheduling_strategy``) are merged into the actor's Ray options last."""
    plain = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    res = plain.get("resources", {})
    merged: Dict[str, Any] = dict(
        name=group_actor_name(plain["experiment"]["name"], group), namespace=NAMESPACE,
        num_cpus=float(res.get("server_cpus", 1.0)), num_gpus=float(res.get("server_gpus", 0.0)),
        max_restarts=int(res.get("max_restarts", -1)), max_task_retries=-1, max_concurrency=1000)
    merged.update(options or {})
    model = model if model is not None else plain["model"]
    return ray.remote(SGGroupServer).options(**merged).remote(plain, group, model, str(run_path))

