"""The generic experiment (``experiment.kind=train``): every stream follows its schedule,
evaluations on held-out data every ``eval_every`` iterations, TensorBoard for everything,
``results.json`` at the end.
"""

from __future__ import annotations

import time
from typing import Dict

from omegaconf import DictConfig
from tqdm import tqdm

from sharedsg.experiments.backend import Backend
from sharedsg.experiments.runlog import RunLog, write_json_atomic
from sharedsg.experiments.schedule import scheduled


def run_training(cfg: DictConfig, backend: Backend, log: RunLog) -> Dict[str, object]:
    """Run ``experiment.iterations`` iterations of every stream's schedule; returns the results."""
    for name, stream_cfg in cfg.streams.items():
        backend.add_stream(name, stream_cfg)
        log.config(name, cfg)
    history: Dict[str, Dict[str, list]] = {n: {"iteration": [], "loss/eval": []} for n in cfg.streams}
    steps = {n: 0 for n in cfg.streams}
    started = time.perf_counter()
    bar = tqdm(range(cfg.experiment.iterations), desc=cfg.experiment.name, disable=not cfg.experiment.progress,
               unit="it", leave=False)
    for it in bar:
        names = scheduled(cfg, it)
        t0 = time.perf_counter()
        results = backend.train(names, it) if names else {}
        elapsed = time.perf_counter() - t0
        for name, metrics in results.items():
            steps[name] += 1
            metrics = dict(metrics, **{"perf/steps_per_s": len(names) / elapsed if elapsed > 0 else 0.0})
            log.scalars(name, it, metrics)
        last = it == cfg.experiment.iterations - 1
        if (it + 1) % cfg.experiment.eval_every == 0 or last:
            for name in cfg.streams:
                ev = backend.evaluate(name)
                log.scalars(name, it, ev)
                history[name]["iteration"].append(it)
                history[name]["loss/eval"].append(ev["loss/eval"])
            bar.set_postfix({n: f"{h['loss/eval'][-1]:.4f}" for n, h in history.items()})
    log.flush()
    results = {
        "experiment": cfg.experiment.name,
        "run": cfg.experiment.run_name,
        "iterations": cfg.experiment.iterations,
        "wall_time_s": time.perf_counter() - started,
        "sg_versions": backend.sg_versions(),
        "streams": {
            n: {"steps": steps[n], "final_loss_eval": h["loss/eval"][-1], "curve": h}
            for n, h in history.items()
        },
    }
    write_json_atomic(log.path / "results.json", results)
    return results
