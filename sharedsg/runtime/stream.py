"""``StreamActor``: one NMN stream on Ray — the ray-free :class:`~sharedsg.harness.stream.Stream`
that :class:`~sharedsg.harness.backend.LocalBackend` runs in-process, plus the SG exchange
with the experiment's server.

Transports (``sg.transport``):

- ``replica`` (default): the stream keeps a local copy of its group's SG weights. Pushes are
  fire-and-forget (at most ``sg.max_inflight_pushes`` un-acknowledged); each acknowledgement
  carries the group's version. When that known version is ahead of the copy the stream
  prefetches the newer weights in the background and swaps them in at its next step; it waits
  for them only when the copy is more than ``sg.max_staleness`` versions behind the newest
  version it has seen. So SG refresh and push overlap with compute.
- ``rpc``: every step asks the server for the synthetic gradients and waits for its push, so
  the server always predicts with the newest weights (with ``experiment.synchronous`` the run
  matches the in-process LocalBackend).

The device is the one Ray assigned (``ray.get_gpu_ids()``; a GPU that this torch cannot use is an
error, :func:`assigned_device`); tensors cross the wire on the CPU.
A checkpoint (learner, optimiser, sequence numbers) is written every
``resources.stream_checkpoint_every`` steps; when Ray restarts a crashed actor it resumes from it.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Dict, Optional, Set, Tuple

import ray
import torch
from omegaconf import OmegaConf

from sharedsg import storage
from sharedsg.errors import UserError
from sharedsg.harness.stream import Stream
from sharedsg.learn.types import SGState
from sharedsg.runtime import NAMESPACE, checkpoint, with_defaults, server_name, was_reconstructed


def assigned_device(require_cuda: bool) -> Tuple[str, Optional[str]]:
    """The device of the GPU(s) Ray assigned this actor (``cuda``; Ray sets CUDA_VISIBLE_DEVICES),
    else ``cpu``; and an error when Ray assigned a GPU that this torch cannot use (a CPU-only
    build, or no driver) and ``require_cuda`` (``resources.require_cuda``) forbids the CPU."""
    gpus = ray.get_gpu_ids()
    if not gpus:
        return "cpu", None
    if torch.cuda.is_available():
        return "cuda", None
    if require_cuda:
        build = "a CPU-only torch build" if torch.version.cuda is None else f"torch {torch.__version__} sees no CUDA device"
        return "cpu", (f"Ray gave this actor GPU {', '.join(map(str, gpus))} on {socket.gethostname()} but it runs "
                       f"{build}; install the CUDA build of torch on the GPU nodes (see docs/clusters.md), or "
                       f"set resources.gpus_per_stream=0 (resources.require_cuda=false computes on the CPU)")
    return "cpu", None


class StreamActor:
    """The plain class; :func:`stream_actor` wraps it in ``ray.remote`` with the stream's resources."""

    def __init__(self, cfg: Dict[str, Any], name: str, run_path: str, threads: int = 1) -> None:
        torch.set_num_threads(max(1, int(threads)))
        self.cfg = with_defaults(cfg)
        self.name = name
        # found by name (not passed in): a restarted actor finds the restarted server too
        self.server = server = ray.get_actor(server_name(self.cfg.experiment.name), namespace=NAMESPACE)
        self.rpc = self.cfg.sg.transport == "rpc"
        self.max_staleness = int(self.cfg.sg.max_staleness)
        self.max_inflight = max(1, int(self.cfg.sg.max_inflight_pushes))
        self.ckpt_every = int(self.cfg.resources.stream_checkpoint_every)
        self.device, self.error = assigned_device(bool(self.cfg.resources.require_cuda))
        if self.error is None:
            try:  # this node writes its checkpoints into the run's storage
                storage.check_writable(run_path)
            except UserError as exc:
                self.error = str(exc)
        if self.error is not None:  # setup() reports it; nothing registered with the server
            return
        self.stream = Stream(self.cfg, name, device=self.device)
        self.learner = self.stream.learner
        self.ckpt_path = checkpoint.stream_checkpoint(run_path, name)
        self.seq = 0  # sequence number of the last push
        self.acked = 0  # every push up to this sequence number is acknowledged (or failed for good)
        self._resolved: Set[int] = set()  # acknowledged pushes above ``acked`` (replies come out of order)
        self.pending: Dict[ray.ObjectRef, int] = {}  # pushes in flight -> their sequence numbers
        self.refresh: Optional[ray.ObjectRef] = None
        self.known_version = 0
        self.last_losses: Dict[str, float] = {}
        self.push_errors = 0
        self.restored_step: Optional[int] = None
        self.reconstructed = was_reconstructed()
        saved = checkpoint.load(self.ckpt_path)
        if saved is not None:
            self.learner.load_state_dict(saved["learner"])
            # pushes up to the checkpoint's are applied or lost for good: this stream never resends them
            self.seq = self.acked = int(saved["seq"])
            self.restored_step = self.learner.steps
        info = {"node": socket.gethostname(), "device": self.device, "data_class": self.stream.data_class}
        reg = ray.get(server.register.remote(name, self.stream.group, self.learner.dims,
                                             OmegaConf.to_container(self.cfg.model, resolve=True), info))
        self.error = reg.get("error")
        if self.error is None:
            self.group = reg["group"]
            self.known_version = int(reg["version"])
            self.seq = max(self.seq, 0)
            if saved is None or self.learner.sg_version != self.known_version:
                self._load(ray.get(server.pull.remote(self.group, -1)))

    # -- setup and info ----------------------------------------------------------------------
    def setup(self) -> Dict[str, Any]:
        """``{"error": ...}`` when the server refused the stream, else its info."""
        return {"error": self.error} if self.error else self.info()

    def info(self) -> Dict[str, Any]:
        return {"name": self.name, "group": getattr(self, "group", None), "steps": self.learner.steps,
                "seq": self.seq, "acked": self.acked, "sg_version": self.learner.sg_version,
                "known_version": self.known_version, "restored_step": self.restored_step,
                "reconstructed": self.reconstructed, "device": self.device, "node": socket.gethostname(),
                "push_errors": self.push_errors}

    # -- SG weights ----------------------------------------------------------------------------
    def _load(self, state: Optional[SGState]) -> None:
        if state is not None and state.version > self.learner.sg_version or (
                state is not None and self.learner.steps == 0):
            self.learner.load_sg(state)
            self.known_version = max(self.known_version, state.version)

    def _poll(self, wait_for: int = 0) -> None:
        """Collect finished push acknowledgements (waiting until at most ``wait_for`` are left in flight)."""
        if not self.pending:
            return
        refs = list(self.pending)
        need = max(0, len(refs) - wait_for)
        ready, rest = ray.wait(refs, num_returns=len(refs), timeout=0)
        if len(ready) < need:
            more, _ = ray.wait(rest, num_returns=need - len(ready))
            ready += more
        for ref in ready:
            seq = self.pending.pop(ref)
            try:
                self._ack(seq, ray.get(ref))
            except ray.exceptions.RayError:
                self.push_errors += 1
                self._resolve(seq)

    def _resolve(self, seq: int) -> None:
        """Push ``seq`` is done with (applied, a duplicate, or failed): advance the watermark."""
        self._resolved.add(seq)
        while self.acked + 1 in self._resolved:
            self.acked += 1
            self._resolved.discard(self.acked)

    def _ack(self, seq: int, reply: Dict[str, Any]) -> None:
        self._resolve(seq)
        if "error" in reply:
            self.push_errors += 1
            return
        self.known_version = max(self.known_version, int(reply["version"]))
        if reply.get("losses"):
            self.last_losses = reply["losses"]

    def _refresh_replica(self) -> None:
        if self.refresh is not None:
            ready, _ = ray.wait([self.refresh], timeout=0)
            if ready or self.known_version - self.learner.sg_version > self.max_staleness:
                self._load(ray.get(self.refresh))
                self.refresh = None
        if self.known_version - self.learner.sg_version > self.max_staleness:
            self._load(ray.get(self.server.pull.remote(self.group, self.learner.sg_version)))

    def _prefetch(self) -> None:
        """Ask for newer weights in the background once the copy is ``max_staleness`` versions behind."""
        if self.refresh is None and self.known_version - self.learner.sg_version >= max(1, self.max_staleness):
            self.refresh = self.server.pull.remote(self.group, self.learner.sg_version)

    # -- training ------------------------------------------------------------------------------
    def train(self, iteration: int = 0) -> Dict[str, float]:
        """One step on the next training batch; its metrics (CPU floats)."""
        t0 = time.perf_counter()
        if self.rpc:
            group, server = self.group, self.server

            def predict(h, y):
                return ray.get(server.predict.remote(group, {c: v.cpu() for c, v in h.items()}, y.cpu()))

            result = self.stream.step(predict)
            self.seq += 1
            reply = ray.get(self.server.push.remote(self.name, self.seq, self.acked, 0, *result.targets.parts()))
            self._ack(self.seq, reply)
            lag = 0.0
        else:
            self._poll(wait_for=len(self.pending))  # collect the acks that are in; never wait here
            self._refresh_replica()
            lag = float(self.known_version - self.learner.sg_version)
            result = self.stream.step()
            self.seq += 1
            ref = self.server.push.remote(self.name, self.seq, self.acked, len(self.pending) + 1,
                                          *result.targets.parts())
            self.pending[ref] = self.seq
            self._poll(wait_for=self.max_inflight)
            self._prefetch()
        metrics = dict(result.metrics)
        metrics.update(self.last_losses)
        metrics["sg/version_lag"] = lag
        metrics["sg/version"] = float(self.known_version)
        metrics["perf/step_time_s"] = time.perf_counter() - t0
        if self.ckpt_every and self.learner.steps % self.ckpt_every == 0:
            self.save()
        return metrics

    def run_steps(self, n: int) -> Dict[str, float]:
        """``n`` steps in one call (the benchmark); wall time and mean version lag."""
        t0 = time.perf_counter()
        lags = [self.train()["sg/version_lag"] for _ in range(n)]
        wall = time.perf_counter() - t0
        return {"steps": n, "wall_s": wall, "step_s": wall / max(n, 1), "version_lag": sum(lags) / max(n, 1)}

    def flush(self) -> Dict[str, Any]:
        """Wait for every push in flight; the stream's info."""
        self._poll(wait_for=0)
        return self.info()

    def save(self) -> str:
        checkpoint.save(self.ckpt_path, {"learner": self.learner.state_dict(), "seq": self.seq, "name": self.name})
        return str(self.ckpt_path)

    def evaluate(self) -> Dict[str, float]:
        return self.stream.evaluate()

    def predict(self, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        return self.stream.predict(x, steps)


def stream_actor(cfg, name: str, run_path: str, *, options: Dict[str, Any], actor_name: str):
    """Start ``StreamActor`` for ``name`` with the Ray ``options`` of its placement
    (:meth:`~sharedsg.runtime.placement.Reservation.stream_options`: CPUs, GPUs, its bundle)."""
    opts: Dict[str, Any] = dict(name=actor_name, namespace=NAMESPACE, max_restarts=int(cfg.resources.max_restarts),
                                max_task_retries=-1, **options)
    plain = OmegaConf.to_container(cfg, resolve=True)
    return ray.remote(StreamActor).options(**opts).remote(plain, name, str(run_path),
                                                          max(1, int(opts.get("num_cpus", 1))))
