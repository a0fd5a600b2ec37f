"""Runtime overhead: one process vs Ray replica vs Ray rpc, 1, 2 and 4 streams, the SG service's CPU per step.

Everything runs in one invocation on the same config, each process at one torch thread
(actors get ``num_cpus=1``). The configurations are measured in interleaved blocks of
``--steps`` steps, ``--reps`` rounds, and every ratio is the median of its per-round ratios,
so a drift of the machine's speed (on a shared 2-core VM, 20% from minute to minute) hits
both sides of a ratio alike:

- ``step_s_local``: a step of one stream in this process (LocalBackend: step + SG update);
- ``ratio_replica`` / ``ratio_rpc``: a stream actor's step time over ``step_s_local``;
- ``steps_per_s_1`` / ``_2`` / ``_4`` and ``scaling_2`` / ``scaling_4``: aggregate throughput of
  one, two and four stream actors (replica) sharing one SG group, measured at the driver;
- ``server_cpu_ms_per_step_N`` / ``server_cpu_share_N``: CPU time of the SG service (registry and
  group actor) per stream-step, and in cores, with N streams;
- ``push_targets_per_s``: pipelined pushes into the group actor from the driver (acknowledged);
  ``train_targets_per_s``: the same pushes until every one is trained on (``exact``);
- ``version_lag_1`` / ``version_lag_2``: mean SG version lag of the replicas;
- ``coalesced_2``: 1 - updates / pushes of the SG group with two streams (0.5: every update
  took two pushes);
- ``peak_rss_mb``: peak resident memory of this process and all its children (the Ray processes).

"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import threading
import time
from typing import Any, Dict, Iterator, List

import psutil
import torch


BENCH_OVERRIDES = [
    "data.format=sample", "data.obs_len=20", "data.pred_len=20", "data.window_stride=20",
    "learner.batch_size=16", "experiment.progress=false", "resources.gpus_per_stream=0",
]


STREAMS = {"pedestrian": "pedestrian", "cyclist2": "cyclist", "pedestrian2": "pedestrian"}  # beside cyclist


def cpu_seconds(pids: List[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` (those still alive)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


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
    for extra_stream, data_class in list(STREAMS.items())[:streams - 1]:
        extra.append(f"streams.{extra_stream}.data_class={data_class}")
    return load_config(None, BENCH_OVERRIDES + list(overrides) + extra)


class _Local:
    """One stream in this process (the LocalBackend: step, then the SG update)."""

    def __init__(self, cfg, warmup: int) -> None:
        from sharedsg.harness.backend import LocalBackend

        self.backend = LocalBackend(cfg)
        self.name = next(iter(cfg.streams))
        self.backend.add_streams({self.name: cfg.streams[self.name]})
        self.it = 0
        self.block(warmup)

    def block(self, steps: int) -> float:
        """Mean step time (s) over ``steps`` steps."""
        t0 = time.perf_counter()
        for _ in range(steps):
            self.backend.train([self.name], self.it)
            self.it += 1
        return (time.perf_counter() - t0) / max(steps, 1)


class _Ray:
    """An experiment's SG server and stream actors, alive across the rounds."""

    def __init__(self, cfg, run_dir: str, warmup: int) -> None:
        import ray

        from sharedsg.runtime import stream_actor_name
        from sharedsg.runtime.service.registry import registry_actor
        from sharedsg.runtime.hosting.stream import stream_actor
        from sharedsg.bench.raytools import settled_state

        self.server = registry_actor(cfg, run_dir, detached=False)
        self.actors = [stream_actor(cfg, n, run_dir,
                                    options={"num_cpus": float(cfg.resources.cpus_per_stream), "num_gpus": 0},
                                    actor_name=stream_actor_name(cfg.experiment.name, n)) for n in cfg.streams]
        ray.get([a.setup.remote() for a in self.actors])
        ray.get([a.run_steps.remote(warmup) for a in self.actors])
        ray.get([a.flush.remote() for a in self.actors])
        state = settled_state(lambda: ray.get(self.server.state.remote()))
        self.server_pids = [state["pid"]] + [g["pid"] for g in state["groups"].values()]

    def block(self, streams: int, steps: int) -> Dict[str, float]:
        """``steps`` steps on each of the first ``streams`` actors at once: aggregate steps/s,
        mean step time, version lag, and 1 - updates / pushes of the server."""
        import ray

        before = ray.get(self.server.state.remote())
        cpu0 = cpu_seconds(self.server_pids)
        t0 = time.perf_counter()
        results = ray.get([a.run_steps.remote(steps) for a in self.actors[:streams]])
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(self.server_pids) - cpu0
        ray.get([a.flush.remote() for a in self.actors[:streams]])
        after = ray.get(self.server.state.remote())
        pushes = max(after["pushes"] - before["pushes"], 1)
        return {"steps_per_s": streams * steps / wall,
                "server_cpu_ms_per_step": 1e3 * cpu / (streams * steps), "server_cpu_share": cpu / wall,
                "step_s": sum(r["step_s"] for r in results) / len(results),
                "version_lag": sum(r["version_lag"] for r in results) / len(results),
                "coalesced": (after["coalesced"] - before["coalesced"]) / pushes}

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a, no_restart=True)
        ray.kill(self.server, no_restart=True)


@contextlib.contextmanager
def _alive(cfg, run_dir: str, warmup: int) -> Iterator[_Ray]:
    run = _Ray(cfg, run_dir, warmup)
    try:
        yield run
    finally:
        run.close()


def _push_throughput(cfg, run_dir: str, pushes: int) -> Dict[str, float]:
    """Pipelined pushes from the driver into one group actor (``exact``): acknowledged per second, and
    trained on per second (until the queue is drained)."""
    import ray

    from sharedsg.learn.stream import StreamLearner
    from sharedsg.runtime.service.registry import registry_actor
    from sharedsg.data.sources import make_source
    from omegaconf import OmegaConf

    name = next(iter(cfg.streams))
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    src = make_source(cfg.data, cfg.streams[name].data_class, "train", 0)
    targets = learner.step(src.next_batch(int(cfg.learner.batch_size))).targets
    server = registry_actor(cfg, run_dir, detached=False)
    try:
        group = ray.get(server.register.remote(name, "shared", learner.dims,
                                               OmegaConf.to_container(cfg.model, resolve=True)))["actor"]
        parts = targets.parts()
        meta = {"acked": 0, "in_flight": 0}
        ray.get([group.push.remote(name, s, meta, *parts) for s in range(1, 6)])
        ray.get(group.drain.remote())
        t0 = time.perf_counter()
        ray.get([group.push.remote(name, s, meta, *parts) for s in range(6, 6 + pushes)])
        acked = time.perf_counter() - t0
        ray.get(group.drain.remote())
        trained = time.perf_counter() - t0
        return {"push_targets_per_s": pushes / acked, "train_targets_per_s": pushes / trained}
    finally:
        ray.kill(server, no_restart=True)


def run_runtime_bench(args: argparse.Namespace) -> Dict[str, Any]:
    import ray

    from sharedsg.runtime import NAMESPACE, system_config

    torch.set_num_threads(1)
    overrides = list(getattr(args, "overrides", []) or [])
    steps, warmup, reps = int(args.steps), int(args.warmup), max(1, int(args.reps))
    out: Dict[str, Any] = {"steps": steps, "reps": reps, "cpus": os.cpu_count(), "torch_threads": 1}
    rounds: List[Dict[str, float]] = [{} for _ in range(reps)]
    with tempfile.TemporaryDirectory(prefix="sharedsg-bench-") as run_dir, _PeakRSS() as mem:
        out["config"] = " ".join(BENCH_OVERRIDES + overrides)
        local = _Local(_config(overrides, 1, "bench", run_dir), warmup)
        started_here = not ray.is_initialized()
        if started_here:
            from sharedsg.runtime.cluster.connection import token_auth_for_embedded_ray

            token_auth_for_embedded_ray()  # as the CLI sets it: no token warning
            # four streams and one SG group actor (one logical CPU each)
            ray.init(address="local", num_cpus=max(int(os.cpu_count() or 1), 5), include_dashboard=False,
                     namespace=NAMESPACE,
                     object_store_memory=200 * 2**20, logging_level="WARNING", _system_config=system_config())
        try:
            # one experiment alive at a time; within it, the paired blocks alternate
            with _alive(_config(overrides + ["sg.transport=replica"], 1, "bench-replica", run_dir), run_dir,
                        warmup) as replica:
                for r in rounds:
                    r["local"] = local.block(steps)
                    rep = replica.block(1, steps)
                    r.update(replica=rep["step_s"], lag_1=rep["version_lag"])
            with _alive(_config(overrides + ["sg.transport=rpc"], 1, "bench-rpc", run_dir), run_dir, warmup) as rpc:
                for r in rounds:
                    r["rpc_local"] = local.block(steps)
                    r["rpc"] = rpc.block(1, steps)["step_s"]
            with _alive(_config(overrides + ["sg.transport=replica"], 4, "bench-many", run_dir), run_dir,
                        warmup) as many:
                for r in rounds:
                    for n in (1, 2, 4):
                        b = many.block(n, steps)
                        if n > 1:  # lag_1 is the single-stream experiment's
                            r[f"lag_{n}"] = b["version_lag"]
                        r.update({f"sps_{n}": b["steps_per_s"],
                                  f"coalesced_{n}": b["coalesced"], f"cpu_ms_{n}": b["server_cpu_ms_per_step"],
                                  f"cpu_share_{n}": b["server_cpu_share"]})
            out.update(_push_throughput(_config(overrides + ["sg.policy=exact"], 1, "bench-push", run_dir),
                                        run_dir, int(args.pushes)))
        finally:
            if started_here:
                ray.shutdown()
    med = statistics.median
    scaling = [r["sps_2"] / r["sps_1"] for r in rounds]
    scaling_4 = [r["sps_4"] / r["sps_1"] for r in rounds]
    out.update({
        "step_s_local": med(r["local"] for r in rounds),
        "step_s_replica": med(r["replica"] for r in rounds), "step_s_rpc": med(r["rpc"] for r in rounds),
        "ratio_replica": med(r["replica"] / r["local"] for r in rounds),
        "ratio_rpc": med(r["rpc"] / r["rpc_local"] for r in rounds),
        "steps_per_s_1": med(r["sps_1"] for r in rounds), "steps_per_s_2": med(r["sps_2"] for r in rounds),
        "scaling_2": med(scaling), "scaling_2_range": [min(scaling), max(scaling)],
        "ratio_replica_range": [min(r["replica"] / r["local"] for r in rounds),
                                max(r["replica"] / r["local"] for r in rounds)],
        "version_lag_1": med(r["lag_1"] for r in rounds), "version_lag_2": med(r["lag_2"] for r in rounds),
        "coalesced_2": med(r["coalesced_2"] for r in rounds),
        "steps_per_s_4": med(r["sps_4"] for r in rounds), "scaling_4": med(scaling_4),
        "version_lag_4": med(r["lag_4"] for r in rounds),
        **{f"server_cpu_ms_per_step_{n}": med(r[f"cpu_ms_{n}"] for r in rounds) for n in (1, 2, 4)},
        **{f"server_cpu_share_{n}": med(r[f"cpu_share_{n}"] for r in rounds) for n in (1, 2, 4)},
        "peak_rss_mb": mem.peak_mb,
    })
    out["floors"] = {"ratio_replica<=1.10": out["ratio_replica"] <= 1.10, "scaling_2>=1.6": out["scaling_2"] >= 1.6}
    return out
