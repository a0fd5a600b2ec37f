"""SG service capacity: N pusher actors replaying recorded target sets against the server and a no-op sink.

Each pusher is an actor (``num_cpus=0``) with the very exchange a stream runs: an
:class:`~sharedsg.runtime.service.client.SGClient` under a
:class:`~sharedsg.runtime.service.endpoint.RayEndpoint` and the streams'
:class:`~sharedsg.harness.endpoint.ExchangeRule` (``sg.max_staleness``: background fetches, a
blocking pull, timed, only when the copy is further behind; at most ``sg.max_inflight_pushes`` in
flight). It takes one step every ``1 / --rate`` seconds, the push of one recorded target set, and
records the version lag of its copy at that step. No NMN is computed, so the server alone is
measured. The target sets are recorded first from a real
``StreamLearner`` stepping on real data (the demo's shape: 50 observed + 50 predicted frames,
batch 16, the knowledge-sharing model).

Beside every server row, in the same run, the same pushers drive a **sink**: an actor that
takes the same calls with the same payloads and does nothing (its version moves once per
``sg.coalesce_max`` pushes, and each version is ``ray.put`` once, so the pulls are the same
traffic): what Ray itself carries on this machine.

Per N, for the sink and for each policy: bytes per push, accepted pushes/s, updates/s, mean and
max version lag at the pushers, pull p50/p99, server CPU share (cores: the group actors and the
registry, or the sink), dropped (evicted) targets, and whether every push was accounted for
exactly once (``exact_once``: no push lost or doubled).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from sharedsg.bench.runtime import cpu_seconds

DEMO_OVERRIDES = [  # configs/knowledge_sharing.yaml's model and data shape, on the bundled real SDD sample
    "model.encoder_hidden=30", "model.slots=10", "model.slot_width=32", "data.obs_len=50", "data.pred_len=50",
    "learner.batch_size=16", "data.format=sample", "experiment.progress=false", "resources.gpus_per_stream=0",
    "sg.sharing=shared",
]


class _Version:
    """A pusher's stand-in for a stream's SG copy (:class:`~sharedsg.harness.endpoint.SGCopy`):
    no predictor is run, so only the version held matters."""

    def __init__(self, version: int) -> None:
        self.sg_version = version

    def load_sg(self, state: Any) -> None:
        self.sg_version = state.version


class Pusher:
    """Replays recorded target sets into an SG service (or the sink) through an :class:`SGClient`."""

    def __init__(self, records: List[Any], rate: float, max_inflight: int, max_staleness: int,
                 wire_dtype: str = "float32") -> None:
        torch.set_num_threads(1)
        self.records, self.period = records, 1.0 / rate
        self.max_inflight, self.max_staleness, self.wire_dtype = max_inflight, max_staleness, wire_dtype
        self.client = None

    def connect(self, registry: Any, name: str, group: str, dims: Dict[str, int], model: Dict[str, Any]) -> bool:
        from sharedsg.runtime.service.client import SGClient

        self.client = SGClient(registry, name, group, dims, model, {"bench": True}, start_seq=None,
                               max_inflight=self.max_inflight, wire_dtype=self.wire_dtype)
        return self.client.error is None

    def run(self, seconds: float) -> Dict[str, Any]:
        """Push at the fixed rate for ``seconds``; what this pusher saw."""
        from sharedsg.harness.endpoint import ExchangeRule
        from sharedsg.runtime.service.endpoint import RayEndpoint

        c = self.client
        ep, rule, copy = RayEndpoint(c), ExchangeRule(self.max_staleness), _Version(c.known_version)
        lags: List[float] = []
        pulls: List[float] = []
        first = c.seq
        t0 = time.perf_counter()
        due = t0
        i = 0
        while time.perf_counter() - t0 < seconds:
            lag = rule.before_step(ep, copy)
            lags.append(float(lag))
            pulls.extend(c.pull_s)  # this step's blocking pulls (the push reports them to the group)
            rule.after_step(ep, copy, self.records[i % len(self.records)], lag)
            i += 1
            due = max(due + self.period, time.perf_counter() - self.period)  # no burst after a stall
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        c.flush()
        return {"sent": c.seq - first, "seq": c.seq, "acked": c.ledger.watermark, "push_errors": c.push_errors,
                "lags": lags, "pulls": pulls, "wall_s": time.perf_counter() - t0}


class Sink:
    """Takes the SG service's calls with the same payloads and does nothing with them."""

    def __init__(self, weights: Any, every: int) -> None:
        self.weights, self.every = weights, max(1, every)
        self.version, self.pushes, self.publishes = 0, 0, 0
        self.published = None

    def register(self, stream: str, group: str, dims: Dict[str, int], model: Dict[str, Any],
                 info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        import ray

        return {"group": group, "version": self.version, "high": 0, "watermark": 0,
                "actor": ray.get_runtime_context().current_actor}

    def push(self, stream: str, seq: int, meta: Dict[str, Any], *parts: Any) -> Dict[str, Any]:
        self.pushes += 1
        if self.pushes % self.every == 0:
            self.version += 1
        return {"applied": True, "seq": seq, "version": self.version}

    def pull(self, since_version: int = -1) -> Optional[Dict[str, Any]]:
        import ray

        from sharedsg.learn.types import SGState

        if self.version <= since_version:
            return None
        if self.published is None or self.published[0] != self.version:
            self.published = (self.version, ray.put(SGState(self.version, self.weights)))
            self.publishes += 1
        return {"version": self.version, "ref": self.published[1]}

    def counts(self) -> Dict[str, int]:
        return {"pushes": self.pushes, "updates": self.version, "pid": os.getpid()}


def _record(cfg, n: int):
    """``n`` target sets from a real StreamLearner stepping on real data, and one SG weight state."""
    from sharedsg.data.sources import make_source
    from sharedsg.learn.sg import SGLearner
    from sharedsg.learn.stream import StreamLearner

    name = next(iter(cfg.streams))
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    src = make_source(cfg.data, cfg.streams[name].data_class, "train", 0)
    records = [learner.step(src.next_batch(int(cfg.learner.batch_size))).targets for _ in range(n)]
    return records, learner.dims, SGLearner(cfg.model, cfg.sg).state().weights


def wire_quality(cfg, records: List[Any], wire: np.dtype, updates: int = 300) -> Dict[str, float]:
    """The SG quality with targets rounded to ``wire`` and back: two SGLearners from the same seed
    train on the same recorded sets (all but the last two), one on the rounded copies; the SG
    loss (Eq. 11) of each on the two held-out sets, summed over the controllers, beside a zero
    predictor's; and the relative rounding error of the true gradients and the fraction of them
    below the narrow dtype's smallest normal number."""
    from sharedsg.learn.sg import SGLearner
    from sharedsg.learn.types import SGTargets
    from sharedsg.model.synthetic import sg_loss

    low = torch.from_numpy(np.zeros(0, dtype=wire)).dtype

    def rounded(t: SGTargets) -> SGTargets:
        def r(v: torch.Tensor) -> torch.Tensor:
            return v.to(low).float()
        return SGTargets({c: r(v) for c, v in t.h.items()}, r(t.y), {c: r(v) for c, v in t.g.items()})

    train, held = records[:-2], records[-2:]
    g = torch.cat([t.g[c].flatten() for t in records for c in t.g])
    out: Dict[str, float] = {
        "g_rel_rounding_error": float((g.to(low).float() - g).norm() / g.norm()),
        "g_frac_below_normal": float((g.abs() < torch.finfo(low).tiny).float().mean()),
        # a predictor of zeros: what the trained ones must beat
        "sg_loss_heldout_zero": sum(sg_loss(torch.zeros_like(t.g[c]), t.g[c]).item()
                                    for t in held for c in t.g) / len(held),
    }
    for name, data in (("float32", train), (wire.name, [rounded(t) for t in train])):
        sg = SGLearner(cfg.model, cfg.sg, seed=0)
        for i in range(updates):
            sg.update([data[i % len(data)]])
        with torch.no_grad():
            losses = [sg_loss(p, t.g[c]).item() for t in held for c, p in sg.modules(t.h, t.y).items()]
        out[f"sg_loss_heldout_{name}"] = sum(losses) / len(held)
    return out


def _row(pushers: List[Any], target: Any, counts, pids, n: int, seconds: float, warmup: float) -> Dict[str, Any]:
    """Warm up, then ``seconds`` measured: the pushers' view and the target's counters."""
    import ray

    from sharedsg.runtime.service.server import percentile

    ray.get([p.run.remote(warmup) for p in pushers[:n]])
    before, cpu0, t0 = counts(), cpu_seconds(pids()), time.perf_counter()
    seen = ray.get([p.run.remote(seconds) for p in pushers[:n]])
    wall = time.perf_counter() - t0
    cpu1 = cpu_seconds(pids())
    after = counts()
    lags = [x for s in seen for x in s["lags"]]
    pulls = [x for s in seen for x in s["pulls"]]
    return {
        "streams": n, "offered_per_s": sum(s["sent"] for s in seen) / wall,
        "accepted_per_s": (after["pushes"] - before["pushes"]) / wall,
        "updates_per_s": (after["updates"] - before["updates"]) / wall,
        "lag_mean": statistics.fmean(lags) if lags else 0.0, "lag_max": max(lags, default=0.0),
        "pull_p50_ms": None if not pulls else 1e3 * percentile(pulls, 0.5),
        "pull_p99_ms": None if not pulls else 1e3 * percentile(pulls, 0.99), "pulls": len(pulls),
        "cpu_share": (cpu1 - cpu0) / wall, "push_errors": sum(s["push_errors"] for s in seen),
        "dropped": after.get("overflow", 0) - before.get("overflow", 0),
        "_seqs": {f"p{i}": (s["seq"], s["acked"]) for i, s in enumerate(seen)},
    }


def run_server_bench(args: argparse.Namespace) -> Dict[str, Any]:
    import ray

    from omegaconf import OmegaConf

    from sharedsg.config import load_config
    from sharedsg.runtime import NAMESPACE, system_config
    from sharedsg.runtime.service.registry import registry_actor
    from sharedsg.bench.raytools import settled_state

    torch.set_num_threads(1)
    ns, policies = list(args.streams), list(args.policies)
    overrides = DEMO_OVERRIDES + list(getattr(args, "overrides", []) or [])
    base = load_config(None, overrides)
    records, dims, weights = _record(base, int(args.records))
    wire = np.dtype(str(base.sg.wire_dtype))
    parts = records[0].parts()
    nbytes = sum(p.size * (wire.itemsize if p.dtype == np.float32 else p.itemsize)
                 for p in parts if isinstance(p, np.ndarray))
    out: Dict[str, Any] = {"config": " ".join(overrides), "rate_per_pusher": args.rate, "seconds": args.seconds,
                           "cpus": os.cpu_count(), "bytes_per_push": int(nbytes), "wire_dtype": wire.name,
                           "policies": policies, "rows": {"sink": [], **{p: [] for p in policies}}}
    if wire != np.float32:
        out["wire_quality"] = wire_quality(base, records, wire)
    started_here = not ray.is_initialized()
    if started_here:
        from sharedsg.runtime.cluster.connection import token_auth_for_embedded_ray

        token_auth_for_embedded_ray()  # as the CLI sets it: no token warning
        ray.init(address="local", num_cpus=max(int(os.cpu_count() or 1), 2) + 1, include_dashboard=False,
                 namespace=NAMESPACE, object_store_memory=400 * 2**20, logging_level="WARNING",
                 _system_config=system_config())
    model = OmegaConf.to_container(base.model, resolve=True)
    pusher_cls = ray.remote(num_cpus=0)(Pusher)
    sink_cls = ray.remote(num_cpus=1, max_concurrency=1000)(Sink)
    pushers = [pusher_cls.remote(records, float(args.rate), int(base.sg.max_inflight_pushes),
                                 int(base.sg.max_staleness), str(base.sg.wire_dtype)) for _ in range(max(ns))]
    try:
        with tempfile.TemporaryDirectory(prefix="sharedsg-bench-server-") as run_dir:
            for n in ns:
                sink = sink_cls.remote(weights, int(base.sg.coalesce_max))
                assert all(ray.get([p.connect.remote(sink, f"p{i}", "shared", dims, model)
                                    for i, p in enumerate(pushers[:n])]))
                sink_pid = ray.get(sink.counts.remote())["pid"]
                row = _row(pushers, sink, lambda: ray.get(sink.counts.remote()), lambda: [sink_pid], n,
                           args.seconds, args.warmup)
                row.pop("_seqs")
                out["rows"]["sink"].append(row)
                ray.kill(sink)
                for policy in policies:
                    cfg = load_config(None, overrides + [f"sg.policy={policy}", f"experiment.name=bench-server-{policy}-{n}"])
                    registry = registry_actor(cfg, os.path.join(run_dir, f"{policy}-{n}"), detached=False)
                    assert all(ray.get([p.connect.remote(registry, f"p{i}", "shared", dims, model)
                                        for i, p in enumerate(pushers[:n])]))
                    state = settled_state(lambda: ray.get(registry.state.remote()))
                    pids = [state["pid"]] + [g["pid"] for g in state["groups"].values()]
                    row = _row(pushers, registry, lambda: ray.get(registry.state.remote()), lambda: pids, n,
                               args.seconds, args.warmup)
                    seqs = row.pop("_seqs")
                    state = ray.get(registry.state.remote())
                    # every push the pushers made was accepted exactly once: none lost, none doubled
                    row["exact_once"] = bool(
                        state["duplicates"] == 0 and state["lost_pushes"] == 0
                        and all(state["streams"][s]["last_seq"] == seq == acked and not state["streams"][s]["ahead"]
                                for s, (seq, acked) in seqs.items()))
                    row["server_pull_p99_ms"] = state["pull_p99_ms"]
                    out["rows"][policy].append(row)
                    ray.kill(registry)
    finally:
        for p in pushers:
            ray.kill(p)
        if started_here:
            ray.shutdown()
    out["floors"] = _floors(out, 16)
    if not getattr(args, "json", False):  # the rows side by side instead of one long dict
        return {"table": "\n" + format_table(out), "floors": out["floors"], "wire_quality": out.get("wire_quality")}
    return out


def _floors(out: Dict[str, Any], n: int) -> Dict[str, Any]:
    """The issue's floors at ``n`` pushers (when measured): accepted >= 80% of the sink's, pull p99 <= 2x
    the sink's, no push lost or doubled, and (buffered) mean version lag <= 2."""
    sink = next((r for r in out["rows"]["sink"] if r["streams"] == n), None)
    if sink is None:
        return {}
    floors: Dict[str, Any] = {}
    for policy in out["policies"]:
        row = next(r for r in out["rows"][policy] if r["streams"] == n)
        f = {"accepted>=0.8*sink": row["accepted_per_s"] >= 0.8 * sink["accepted_per_s"],
             "pull_p99<=2*sink": (row["pull_p99_ms"] or 0) <= 2 * (sink["pull_p99_ms"] or float("inf")),
             "exact_once": row["exact_once"]}
        if policy == "buffered":
            f["lag_mean<=2"] = row["lag_mean"] <= 2
        floors[policy] = f
    return floors


def format_table(out: Dict[str, Any]) -> str:
    """The rows side by side: sink, then each policy."""
    cols = ("streams", "accepted_per_s", "updates_per_s", "lag_mean", "lag_max", "pull_p50_ms", "pull_p99_ms",
            "cpu_share", "dropped")
    lines = [f"bytes per push: {out['bytes_per_push']}, offered {out['rate_per_pusher']}/s per pusher"]
    for name, rows in out["rows"].items():
        lines.append(f"{name}:")
        lines.append("  " + " ".join(f"{c:>14}" for c in cols) + "  exact_once")
        for r in rows:
            cells = [r.get(c) for c in cols]
            lines.append("  " + " ".join(f"{'-' if v is None else (f'{v:.2f}' if isinstance(v, float) else v):>14}"
                                         for v in cells) + f"  {r.get('exact_once', '-')}")
    return "\n".join(lines)
