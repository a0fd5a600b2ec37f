"""Runtime overhead: one process vs Ray replica vs Ray rpc, 1 vs 2 streams, server push throughput.

Everything runs in one invocation on the same config, each process at one torch thread
(actors get ``num_cpus=1``), so the ratios compare like with like:

- ``step_s_local``: a step of one stream in this process (LocalBackend: step + SG update);
- ``ratio_replica`` / ``ratio_rpc``: a stream actor's step time over ``step_s_local``;
- ``steps_per_s_1`` / ``steps_per_s_2`` and ``scaling_2``: aggregate throughput of 1 and 2
  stream actors (replica) sharing one SG group, measured at the driver;
- ``push_targets_per_s``: pipelined pushes into the server from the driver;
- ``version_lag_1`` / ``version_lag_2``: mean SG version lag of the replicas;
- ``peak_rss_mb``: peak resident memory of this process and all its children (the Ray processes).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from typing import Any, Dict, List

import psutil
import torch

BENCH_OVERRIDES = [
    "data.format=sample", "data.obs_len=20", "data.pred_len=20", "data.window_stride=20",
    "learner.batch_size=16", "experiment.progress=false", "resources.gpus_per_stream=0",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=60, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--pushes", type=int, default=200, help="pushes in the server throughput test")
    parser.add_argument("overrides", nargs="*", help="config key=value overrides (on top of the bench's own)")


class _PeakRSS:
    """Samples the RSS of this process and its descendants; ``peak_mb`` is the largest sum."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.every_s, self.peak = every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for p in [me] + me.children(recursive=True):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> "_PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def _config(overrides: List[str], streams: int, name: str, run_dir: str):
    from sharedsg.config import load_config

    extra = [f"experiment.name={name}", f"experiment.run_dir={run_dir}"]
    if streams == 2:
        extra.append("streams.pedestrian.data_class=pedestrian")
    return load_config(None, BENCH_OVERRIDES + list(overrides) + extra)


def _local_step_s(cfg, warmup: int, steps: int) -> float:
    from sharedsg.experiments.backend import LocalBackend

    backend = LocalBackend(cfg)
    name = next(iter(cfg.streams))
    backend.add_stream(name, cfg.streams[name])
    for it in range(warmup):
        backend.train([name], it)
    t0 = time.perf_counter()
    for it in range(steps):
        backend.train([name], it)
    return (time.perf_counter() - t0) / steps


def _ray_run(cfg, run_dir: str, warmup: int, steps: int) -> Dict[str, Any]:
    import ray

    from sharedsg.experiments.backend import stream_seed
    from sharedsg.runtime import stream_actor_name
    from sharedsg.runtime.server import server_actor
    from sharedsg.runtime.stream import stream_actor

    server = server_actor(cfg, run_dir, detached=False)
    actors = [stream_actor(cfg, n, stream_seed(cfg, n), run_dir, gpus=0.0,
                           actor_name=stream_actor_name(cfg.experiment.name, n)) for n in cfg.streams]
    try:
        ray.get([a.setup.remote() for a in actors])
        ray.get([a.run_steps.remote(warmup) for a in actors])
        t0 = time.perf_counter()
        results = ray.get([a.run_steps.remote(steps) for a in actors])
        wall = time.perf_counter() - t0
        ray.get([a.flush.remote() for a in actors])
        state = ray.get(server.state.remote())
    finally:
        for a in actors:
            ray.kill(a, no_restart=True)
        ray.kill(server, no_restart=True)
    return {"wall_s": wall, "steps_per_s": len(actors) * steps / wall,
            "step_s": sum(r["step_s"] for r in results) / len(results),
            "version_lag": sum(r["version_lag"] for r in results) / len(results), "pushes": state["pushes"]}


def _push_throughput(cfg, run_dir: str, pushes: int) -> float:
    import ray

    from sharedsg.learn.stream import StreamLearner
    from sharedsg.runtime.server import server_actor
    from sharedsg.data.sources import make_source
    from omegaconf import OmegaConf

    name = next(iter(cfg.streams))
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    src = make_source(cfg.data, cfg.streams[name].data_class, "train", 0)
    targets = learner.step(src.next_batch(int(cfg.learner.batch_size))).targets
    server = server_actor(cfg, run_dir, detached=False)
    try:
        ray.get(server.register.remote(name, learner.dims, OmegaConf.to_container(cfg.model, resolve=True)))
        ref = ray.put(targets)
        ray.get([server.push.remote(name, s, ref) for s in range(1, 6)])
        t0 = time.perf_counter()
        ray.get([server.push.remote(name, s, ref) for s in range(6, 6 + pushes)])
        return pushes / (time.perf_counter() - t0)
    finally:
        ray.kill(server, no_restart=True)


def run_runtime_bench(args: argparse.Namespace) -> Dict[str, Any]:
    import ray

    from sharedsg.runtime import NAMESPACE

    torch.set_num_threads(1)
    overrides = list(getattr(args, "overrides", []) or [])
    steps, warmup = int(args.steps), int(args.warmup)
    out: Dict[str, Any] = {"steps": steps, "cpus": os.cpu_count(), "torch_threads": 1}
    with tempfile.TemporaryDirectory(prefix="sharedsg-bench-") as run_dir, _PeakRSS() as mem:
        one = _config(overrides, 1, "bench", run_dir)
        out["config"] = " ".join(BENCH_OVERRIDES + overrides)
        out["step_s_local"] = _local_step_s(one, warmup, steps)
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(num_cpus=max(int(os.cpu_count() or 1), 3), include_dashboard=False, namespace=NAMESPACE,
                     object_store_memory=200 * 2**20, logging_level="WARNING")
        try:
            rep = _ray_run(_config(overrides + ["sg.transport=replica"], 1, "bench-replica", run_dir),
                           run_dir, warmup, steps)
            rpc = _ray_run(_config(overrides + ["sg.transport=rpc"], 1, "bench-rpc", run_dir), run_dir, warmup, steps)
            two = _ray_run(_config(overrides + ["sg.transport=replica"], 2, "bench-two", run_dir),
                           run_dir, warmup, steps)
            out["push_targets_per_s"] = _push_throughput(_config(overrides, 1, "bench-push", run_dir), run_dir,
                                                         int(args.pushes))
        finally:
            if started_here:
                ray.shutdown()
    out.update({
        "step_s_replica": rep["step_s"], "step_s_rpc": rpc["step_s"],
        "ratio_replica": rep["step_s"] / out["step_s_local"], "ratio_rpc": rpc["step_s"] / out["step_s_local"],
        "steps_per_s_1": rep["steps_per_s"], "steps_per_s_2": two["steps_per_s"],
        "scaling_2": two["steps_per_s"] / rep["steps_per_s"],
        "version_lag_1": rep["version_lag"], "version_lag_2": two["version_lag"],
        "peak_rss_mb": mem.peak_mb,
    })
    out["floors"] = {"ratio_replica<=1.10": out["ratio_replica"] <= 1.10, "scaling_2>=1.6": out["scaling_2"] >= 1.6}
    return out
