"""``RayBackend``: the experiments' :class:`~sharedsg.harness.backend.Backend` on Ray actors.

Same semantics as :class:`~sharedsg.harness.backend.LocalBackend` (the same
:class:`~sharedsg.harness.stream.Stream` inside each ``StreamActor``, metrics per step), with
the experiment's SG service (registry + group actors). Each stream's SG group is decided here, on the driver
(:func:`~sharedsg.harness.stream.group_of`), and written into the config the actor gets.
Streams scheduled in the same iteration step in parallel; with ``experiment.synchronous`` they step one after another in config order.
The driver writes everything to TensorBoard on its own machine: each stream's metrics come
back with its step, the server's state is polled (``server/`` in the run directory).
Every stream actor starts inside its bundle of the run's placement group
(:class:`~sharedsg.runtime.hosting.placement.Reservation`); streams that join later (attach) reserve
theirs together, all or nothing.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping, Optional

import ray
import torch
from omegaconf import DictConfig, OmegaConf

from sharedsg.errors import UserError
from sharedsg.harness.runlog import RunLog
from sharedsg.harness.stream import group_of
from sharedsg.runtime import NAMESPACE, forget_resets, group_actor_name, record_reset, stream_actor_name
from sharedsg.runtime.hosting import placement
from sharedsg.runtime.hosting.actors import stop_actors
from sharedsg.runtime.hosting.placement import Reservation
from sharedsg.runtime.hosting.stream import stream_actor

SERVER_LOG_EVERY = 10  # iterations between polls of the server's state for TensorBoard
CLOSE_TIMEOUT_S = 30.0  # close() waits at most this long in all (pushes in flight, last state, checkpoint)


def server_scalars(state: Mapping[str, Any], last_poll: tuple, now: float) -> Dict[str, float]:
    """The ``server/`` and ``sg/version/<group>`` scalars of one registry state (``last_poll``: the
    previous poll's (time, pushes), for the push rate). A group that did not answer in time is in
    the state as ``{"error": ...}``: it has no version scalar this time and counts in
    ``server/groups_unreachable`` (the totals are over the groups that answered)."""
    pushes = state["pushes"]
    values = {"server/pushes": pushes, "server/updates": state["updates"],
              "server/coalesced": state["coalesced"], "server/queue": state["queue"],
              "server/lost_pushes": state["lost_pushes"], "server/restarts": state["restarts"],
              "server/checkpoints": state["checkpoints"],
              "server/groups_unreachable": sum("error" in info for info in state["groups"].values())}
    t0, p0 = last_poll
    if now > t0:
        values["server/pushes_per_s"] = (pushes - p0) / (now - t0)
    values.update(state.get("scalars", {}))  # ingest and update rates, buffer, pull latency, lag
    for g, info in state["groups"].items():
        if "error" not in info:
            values[f"sg/version/{g}"] = info["version"]
    return values


class RayBackend:
    def __init__(self, cfg: DictConfig, log: Optional[RunLog], server: Any, *, owns_server: bool = True,
                 reservation: Optional[Reservation] = None, on_close=None) -> None:
        """``reservation``: the placement of ``cfg.streams`` (a run's, made with its server); None:
        reserve ``cfg.streams`` now, all together (attach)."""
        self.cfg, self.log, self.server = cfg, log, server
        self.owns_server = owns_server
        self.on_close = on_close
        self.reservations: List[Reservation] = [
            reservation if reservation is not None else placement.reserve_streams(cfg, list(cfg.streams))]
        self.run_path = log.location if log is not None else ray.get(server.state.remote())["run_path"]
        self.actors: Dict[str, Any] = {}
        self.idle: Dict[str, Any] = {}  # stream actors of the run before a reset, until their stream is added
        self.moved_from: List[str] = []  # the run paths that resets moved on from
        self.groups: Dict[str, str] = {}
        self._state_ref = None
        self._last_state: Optional[Dict[str, Any]] = None
        self._last_poll = (time.perf_counter(), 0)
        self.closed = False

    def _options(self, name: str) -> Dict[str, Any]:
        """The Ray options of stream ``name``'s bundle (a stream not reserved yet reserves its own)."""
        for r in self.reservations:
            if r.has_stream(name):
                return r.stream_options(name)
        extra = placement.reserve_streams(self.cfg, [name])
        self.reservations.append(extra)
        return extra.stream_options(name)

    # -- Backend protocol ------------------------------------------------------------------
    def add_streams(self, streams: Mapping[str, DictConfig]) -> None:
        """Start every stream's actor at once, then wait for all their setups: the processes start in
        parallel; a stream whose actor a :meth:`reset` kept starts over in it. If one is refused, none
        of them stays (its one-line reason is raised)."""
        for name, stream_cfg in streams.items():
            if name not in self.cfg.streams:  # attach and tests may add a stream not in the config
                self.cfg = OmegaConf.merge(self.cfg, {"streams": {name: stream_cfg}})
        self.cfg = OmegaConf.merge(self.cfg, {"streams": {n: {"group": group_of(self.cfg, n)} for n in streams}})
        started: Dict[str, Any] = {}
        setups: List[ray.ObjectRef] = []
        plain = OmegaConf.to_container(self.cfg, resolve=True)
        try:
            for name in streams:
                if name in self.idle:  # kept from the run before a reset: it starts over in this one
                    started[name] = self.idle.pop(name)
                    setups.append(started[name].reset.remote(plain, str(self.run_path)))
                    continue
                try:
                    started[name] = stream_actor(self.cfg, name, self.run_path, options=self._options(name),
                                                 actor_name=stream_actor_name(self.cfg.experiment.name, name))
                except ValueError as exc:  # the name is taken
                    raise UserError(f"stream '{name}' of experiment '{self.cfg.experiment.name}' is already "
                                    f"running: {exc}") from None
                setups.append(started[name].setup.remote())
            infos = dict(zip(started, ray.get(setups)))
            refused = [info["error"] for info in infos.values() if info.get("error")]
            if refused:
                raise UserError(refused[0])
        except BaseException:
            stop_actors(started.values())
            raise
        self.actors.update(started)
        self.groups.update({n: info["group"] for n, info in infos.items()})

    def _group_actors(self) -> List[Any]:
        """Handles of the SG group actors this run's streams use (those alive)."""
        handles = []
        for group in sorted(set(self.groups.values())):
            try:
                handles.append(ray.get_actor(group_actor_name(self.cfg.experiment.name, group), namespace=NAMESPACE))
            except ValueError:  # not started, or gone
                continue
        return handles

    def train(self, names: List[str], iteration: int) -> Dict[str, Dict[str, float]]:
        if self.cfg.experiment.synchronous:
            out = {n: ray.get(self.actors[n].train.remote(iteration)) for n in names}
        else:
            refs = [self.actors[n].train.remote(iteration) for n in names]
            out = dict(zip(names, ray.get(refs)))
        self._log_server(iteration)
        return out

    def evaluate(self, name: str) -> Dict[str, float]:
        return ray.get(self.actors[name].evaluate.remote())

    def predict(self, name: str, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        return ray.get(self.actors[name].predict.remote(x.detach().cpu(), steps))

    def groups_of(self) -> Dict[str, str]:
        return dict(self.groups)

    def sg_versions(self) -> Dict[str, int]:
        self.flush()  # the versions once every push made so far is trained on (not a race with them)
        return ray.get(self.server.versions.remote())

    # -- extras ----------------------------------------------------------------------------
    def info(self, name: str) -> Dict[str, Any]:
        return ray.get(self.actors[name].info.remote())

    def server_state(self) -> Dict[str, Any]:
        return ray.get(self.server.state.remote())

    def flush(self) -> None:
        """Every stream's pushes acknowledged, and its SG group trained on what it accepted."""
        ray.get([a.flush.remote() for a in self.actors.values()])

    def _log_server(self, iteration: int, force: bool = False, wait_s: float = 10.0) -> None:
        """Server scalars (``server/``): pushes, updates, coalesced pushes, push rate, versions, queue,
        lost pushes, restarts."""
        if self.log is None:
            return
        if self._state_ref is not None:
            ready, _ = ray.wait([self._state_ref], timeout=0 if not force else min(10.0, wait_s))
            if ready:
                state = ray.get(self._state_ref)
                self._state_ref = None
                t = time.perf_counter()
                self.log.scalars("server", iteration, server_scalars(state, self._last_poll, t))
                self._last_poll, self._last_state = (t, state["pushes"]), state
        if self._state_ref is None and (force or iteration % SERVER_LOG_EVERY == 0):
            self._state_ref = self.server.state.remote()

    def _finish(self, deadline: float) -> None:
        """The end of a run, before its actors stop or start over: every push in flight trained on,
        the server's last state in TensorBoard, a checkpoint of the SG service (when this backend owns it)."""
        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        if self.actors:
            ray.get([a.flush.remote() for a in self.actors.values()], timeout=left())
        if self.log is not None:
            self._state_ref = None
            self._log_server(int(self.cfg.experiment.iterations), force=True)
            self._log_server(int(self.cfg.experiment.iterations), force=True, wait_s=left())
            self.log.flush()
        if self.owns_server:
            ray.get(self.server.checkpoint.remote(), timeout=left())

    def reset(self, cfg: DictConfig, log: RunLog) -> None:
        """End this run (as :meth:`close` does, the actors kept) and run ``cfg`` on the same actors
        from now on, logging to ``log``: another seed of the experiment (the same streams, SG groups
        and model; Ray Tune's ``reuse_actors``). The SG groups start over first, each as a new group
        actor of ``cfg`` would (the seed's initial SG weights, version 0, no ledgers or counters,
        checkpoints in ``log``'s run); each stream then starts over in its actor when
        :meth:`add_streams` adds it (the seed's weights and data order) and registers afresh. What the
        run produces is what new actors produce (tested). A reused actor that crashes later comes
        back in this run (:func:`~sharedsg.runtime.record_reset`)."""
        if not self.owns_server or self.closed:
            raise ValueError("reset: only an open backend of a run (which owns its SG service) starts over")
        if ({n: group_of(cfg, n) for n in cfg.streams} != {n: group_of(self.cfg, n) for n in self.cfg.streams}
                or cfg.experiment.name != self.cfg.experiment.name or cfg.model != self.cfg.model
                or cfg.resources != self.cfg.resources):
            raise ValueError("reset: the new config must run the same streams and SG groups, with the same "
                             "model and resources, in the same experiment (another seed)")
        self._finish(time.monotonic() + CLOSE_TIMEOUT_S)
        plain = OmegaConf.to_container(cfg, resolve=True)
        record_reset(str(self.run_path), plain, str(log.location))
        self.moved_from.append(str(self.run_path))
        ray.get(self.server.reset.remote(plain, str(log.location)))
        self.cfg, self.log, self.run_path = cfg, log, log.location
        self.idle.update(self.actors)
        self.actors.clear()
        self._state_ref, self._last_state, self._last_poll = None, None, (time.perf_counter(), 0)
        log.config("server", cfg)

    def close(self) -> None:
        """Wait for pushes in flight, log the server's last state, stop the streams (and the server
        unless the experiment is attachable). Safe to call twice and after Ctrl-C; all its waiting
        together is bounded by ``CLOSE_TIMEOUT_S`` (after Ctrl-C, actors may already be gone)."""
        if self.closed:
            return
        self.closed = True
        deadline = time.monotonic() + CLOSE_TIMEOUT_S  # all the waiting below, together
        try:
            self._finish(deadline)
        except (ray.exceptions.RayError, KeyboardInterrupt):
            pass
        finally:
            ending = list(self.actors.values()) + list(self.idle.values())
            self.actors.clear()
            self.idle.clear()
            if self.owns_server and not self.cfg.experiment.attachable:  # the SG groups first, then the registry
                ending += self._group_actors() + [self.server]
            stop_actors(ending, timeout_s=max(deadline - time.monotonic(), 2.0))
            if self.moved_from:
                forget_resets(self.moved_from)
            for r in self.reservations:  # an attachable server keeps its own (detached) bundles
                r.release(servers=not self.cfg.experiment.attachable)
            self.reservations.clear()
            if self.on_close is not None:
                self.on_close()
