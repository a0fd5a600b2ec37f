"""``StreamActor``: one NMN stream on Ray — the ray-free :class:`~sharedsg.harness.stream.Stream`
that :class:`~sharedsg.harness.backend.LocalBackend` runs in-process, exchanging with the
experiment's SG service through a :class:`~sharedsg.runtime.service.endpoint.RayEndpoint` instead of a
:class:`~sharedsg.harness.endpoint.LocalEndpoint`. The exchange itself (:meth:`Stream.train`)
is the same code.

Transports (``sg.transport``):

- ``replica`` (default): the stream keeps a local copy of its group's SG weights. Pushes are
  fire-and-forget (at most ``sg.max_inflight_pushes`` un-acknowledged); each acknowledgement
  carries the group's version. Newer weights are fetched in the background and swapped in at the
  next step; the stream waits for them only when its copy is more than ``sg.max_staleness``
  versions behind the newest version it has seen. So SG refresh and push overlap with compute.
- ``rpc``: every step asks the group actor for the synthetic gradients and waits for its push's
  acknowledgement; with ``exact`` the group predicts only after training on every accepted push.

With ``experiment.synchronous`` both match the in-process LocalBackend (tested).
The device is the one Ray assigned (``ray.get_gpu_ids()``; a GPU that this torch cannot use is an
error, :func:`assigned_device`); tensors cross the wire on the CPU.
A checkpoint (learner, optimiser, sequence numbers) is written every
``resources.stream_checkpoint_every`` steps; when Ray restarts a crashed actor it resumes from it,
or, without one, continues its sequence numbers after the group's (exactly once either way).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Dict, Optional, Tuple

import ray
import torch
from omegaconf import OmegaConf

from sharedsg import storage
from sharedsg.errors import UserError
from sharedsg.harness.stream import Stream
from sharedsg.runtime import NAMESPACE, current_args, with_defaults, server_name, was_reconstructed
from sharedsg.runtime.service import checkpoint
from sharedsg.runtime.service.client import SGClient
from sharedsg.runtime.service.endpoint import RayEndpoint


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
        self.name = name
        cfg, run_path = current_args(cfg, run_path)  # a restart after a reset: the run it serves now
        self._begin(cfg, run_path, reconstructed=was_reconstructed())

    def _begin(self, cfg: Dict[str, Any], run_path: str, reconstructed: bool) -> None:
        """The stream of one run (:meth:`reset` starts it again): its :class:`Stream` (the run's seed:
        weights and data order), its checkpoint if there is one, registered with its SG group."""
        self.cfg = with_defaults(cfg)
        self.group: Optional[str] = None
        # found by name (not passed in): a restarted actor finds the restarted registry too
        registry = ray.get_actor(server_name(self.cfg.experiment.name), namespace=NAMESPACE)
        self.ckpt_every = int(self.cfg.resources.stream_checkpoint_every)
        self.device, self.error = assigned_device(bool(self.cfg.resources.require_cuda))
        if self.error is None:
            try:  # this node writes its checkpoints into the run's storage
                storage.check_writable(run_path)
            except UserError as exc:
                self.error = str(exc)
        if self.error is not None:  # setup() reports it; nothing registered with the server
            return
        self.stream = Stream(self.cfg, self.name, device=self.device)
        self.learner = self.stream.learner
        self.ckpt_path = checkpoint.stream_checkpoint(run_path, self.name)
        self.restored_step: Optional[int] = None
        self.reconstructed = reconstructed
        try:
            saved = checkpoint.load(self.ckpt_path)
        except UserError as exc:  # a damaged checkpoint: setup() reports it; nothing registered with the server
            self.error = str(exc)
            return
        start_seq = None
        if saved is not None:
            self.learner.load_state_dict(saved["learner"])
            # pushes up to the checkpoint's are applied or lost for good: this stream never resends them
            start_seq = int(saved["seq"])
            self.restored_step = self.learner.steps
        info = {"node": socket.gethostname(), "device": self.device, "data_class": self.stream.data_class}
        self.sg = SGClient(registry, self.name, self.stream.group, self.learner.dims,
                           OmegaConf.to_container(self.cfg.model, resolve=True), info,
                           start_seq=start_seq, max_inflight=int(self.cfg.sg.max_inflight_pushes),
                           wire_dtype=str(self.cfg.sg.wire_dtype))
        self.error = self.sg.error
        if self.error is None:
            self.group = self.sg.group
            self.stream.join(RayEndpoint(self.sg), resumed=saved is not None)

    def reset(self, cfg: Dict[str, Any], run_path: str) -> Dict[str, Any]:
        """Run the same stream in another run (the next seed of an experiment, ``RayBackend.reset``;
        its SG group reset first) in this process, as a new actor of ``cfg`` and ``run_path`` would
        (:meth:`_begin`); its :meth:`setup`."""
        self._begin(cfg, run_path, reconstructed=False)
        return self.setup()

    # -- setup and info ----------------------------------------------------------------------
    def setup(self) -> Dict[str, Any]:
        """``{"error": ...}`` when the server refused the stream, else its info."""
        return {"error": self.error} if self.error else self.info()

    def info(self) -> Dict[str, Any]:
        out = {"name": self.name, "group": self.group, "steps": self.learner.steps,
               "sg_version": self.learner.sg_version, "restored_step": self.restored_step,
               "reconstructed": self.reconstructed, "device": self.device, "node": socket.gethostname(),
               "pid": os.getpid()}
        if self.error is None:
            out.update(self.sg.info())
        return out

    # -- training ------------------------------------------------------------------------------
    def train(self, iteration: int = 0) -> Dict[str, float]:
        """One step of the stream and its SG exchange (:meth:`Stream.train`); its metrics (CPU floats)."""
        t0 = time.perf_counter()
        metrics = self.stream.train()
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
        """Wait for every push in flight to be acknowledged and the group to have trained on all it
        accepted (``buffered``: taken or evicted); the stream's info."""
        if self.error is None:
            self.stream.endpoint.flush()
        return self.info()

    def save(self) -> str:
        checkpoint.save(self.ckpt_path, {"learner": self.learner.state_dict(), "seq": self.sg.seq, "name": self.name})
        return str(self.ckpt_path)

    def evaluate(self) -> Dict[str, float]:
        return self.stream.evaluate()

    def predict(self, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        return self.stream.predict(x, steps)


def stream_actor(cfg, name: str, run_path: str, *, options: Dict[str, Any], actor_name: str):
    """Start ``StreamActor`` for ``name`` with the Ray ``options`` of its placement
    (:meth:`~sharedsg.runtime.hosting.placement.Reservation.stream_options`: CPUs, GPUs, its bundle)."""
    opts: Dict[str, Any] = dict(name=actor_name, namespace=NAMESPACE, max_restarts=int(cfg.resources.max_restarts),
                                max_task_retries=-1, **options)
    plain = OmegaConf.to_container(cfg, resolve=True)
    return ray.remote(StreamActor).options(**opts).remote(plain, name, str(run_path),
                                                          max(1, int(opts.get("num_cpus", 1))))
