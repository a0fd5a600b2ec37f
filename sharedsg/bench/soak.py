"""Soak: N real streams training against the SG service for minutes, the SG group actor killed twice and one stream once.

A benchmark, not a CI test. Real ``StreamActor``s (the runtime bench's config: 20 + 20 frames,
batch 16, on the bundled real SDD sample) step in parallel for ``--minutes``, sharing one SG
group. At 1/3 and 2/3 of the run the group actor is killed (Ray restarts it from its last
checkpoint); at 1/2 one stream actor is killed (it resumes from its own checkpoint).

Reported: steps per stream, whether the SG version any stream saw ever went back
(``versions_monotone``), pushes lost (counted by the push ledgers) against what the checkpoint
interval allows (``sg.checkpoint_every_pushes`` per server kill, plus the pushes queued at the
kill), duplicates (the killed stream's re-done steps), and the peak resident memory of every
process (driver, registry, group actor, each stream) up to minute 5 (``--rss-at``) and up to the
end: ``rss_within_5pct`` when no process grew by more than 5% after it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any, Dict, List

import psutil

from sharedsg.bench.runtime import BENCH_OVERRIDES, STREAMS


def _rss(pid: int) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


def run_soak_bench(args: argparse.Namespace) -> Dict[str, Any]:
    import ray

    from sharedsg.config import load_config
    from sharedsg.runtime import NAMESPACE, group_actor_name, system_config
    from sharedsg.runtime.hosting.backend import RayBackend
    from sharedsg.runtime.service.registry import registry_actor

    n = max(1, min(int(args.streams), 1 + len(STREAMS)))
    seconds = 60.0 * float(args.minutes)
    rss_at = min(60.0 * float(args.rss_at), seconds / 3)
    extra = [f"streams.{s}.data_class={c}" for s, c in list(STREAMS.items())[:n - 1]]
    started_here = not ray.is_initialized()
    if started_here:
        from sharedsg.runtime.cluster.connection import token_auth_for_embedded_ray

        token_auth_for_embedded_ray()  # as the CLI sets it: no token warning
        ray.init(address="local", num_cpus=n + 2, include_dashboard=False, namespace=NAMESPACE,
                 object_store_memory=200 * 2**20, logging_level="WARNING", _system_config=system_config())
    out: Dict[str, Any] = {"minutes": args.minutes, "streams": n}
    try:
        with tempfile.TemporaryDirectory(prefix="sharedsg-soak-") as run_dir:
            cfg = load_config(None, BENCH_OVERRIDES + extra + list(args.overrides or []) + [
                "experiment.name=soak", f"experiment.run_dir={run_dir}"])
            out["config"] = " ".join(BENCH_OVERRIDES + extra + list(args.overrides or []))
            server = registry_actor(cfg, run_dir, detached=False)
            backend = RayBackend(cfg, None, server)
            names = list(cfg.streams)
            backend.add_streams(cfg.streams)
            group = lambda: ray.get_actor(group_actor_name("soak", "shared"), namespace=NAMESPACE)  # noqa: E731

            def pids() -> Dict[str, int]:
                state = backend.server_state()
                roles = {"driver": os.getpid(), "registry": state["pid"]}
                roles.update({f"group:{g}": s["pid"] for g, s in state["groups"].items() if "pid" in s})
                roles.update({f"stream:{s}": backend.info(s)["pid"] for s in names})
                return roles

            peak_early: Dict[str, float] = {}
            peak: Dict[str, float] = {}
            events: List[Dict[str, Any]] = []
            plan = [(seconds / 3, "kill group"), (seconds / 2, f"kill stream {names[-1]}"),
                    (2 * seconds / 3, "kill group")]
            seen = {s: [] for s in names}
            t0 = time.monotonic()
            last_sample, it, roles = -1e9, 0, pids()
            while time.monotonic() - t0 < seconds:
                now = time.monotonic() - t0
                if plan and now >= plan[0][0]:
                    _, what = plan.pop(0)
                    if what == "kill group":
                        ray.kill(group(), no_restart=False)
                    else:
                        ray.kill(backend.actors[names[-1]], no_restart=False)
                    events.append({"at_s": round(now, 1), "event": what})
                for s, m in backend.train(names, it).items():
                    seen[s].append(m["sg/version"])
                it += 1
                if now - last_sample >= 5.0:
                    last_sample = now
                    try:
                        roles = pids()
                    except ray.exceptions.RayError:
                        pass
                    for role, pid in roles.items():
                        mb = _rss(pid)
                        peak[role] = max(peak.get(role, 0.0), mb)
                        if now <= rss_at:
                            peak_early[role] = max(peak_early.get(role, 0.0), mb)
            backend.flush()
            state = backend.server_state()
            infos = {s: backend.info(s) for s in names}
            backend.close()
    finally:
        if started_here:
            ray.shutdown()
    k = int(cfg.sg.checkpoint_every_pushes)
    growth = {r: (peak[r] / peak_early[r] - 1.0) if peak_early.get(r) else None for r in peak}
    out.update({
        "iterations": it, "events": events, "steps": {s: i["steps"] for s, i in infos.items()},
        "versions_monotone": all(v == sorted(v) for v in seen.values()),
        "server_restarts": state["restarts"], "pushes": state["pushes"], "trained": state["trained"],
        "duplicates": state["duplicates"], "lost_pushes": state["lost_pushes"], "overflow": state["overflow"],
        "lost_bound_checkpoint_interval": 2 * k,
        "lost_within_checkpoint_interval": state["lost_pushes"] <= 2 * k,
        "pushes_sent": sum(i["seq"] for i in infos.values()),
        # every distinct push accepted once or counted lost
        "every_push_accounted": state["pushes"] + state["lost_pushes"] == sum(i["seq"] for i in infos.values()),
        "rss_mb_until_rss_at": {r: round(v, 1) for r, v in peak_early.items()},
        "rss_mb_until_end": {r: round(v, 1) for r, v in peak.items()},
        "rss_growth": {r: (None if g is None else round(g, 4)) for r, g in growth.items()},
        "rss_within_5pct": all(g is None or g <= 0.05 for g in growth.values()),
        "rss_at_s": rss_at, "completed": True,
    })
    return out
