"""The train loop: every stream of a config follows its schedule on a :class:`Backend`, with
evaluations on held-out data every ``experiment.eval_every`` iterations and TensorBoard for
everything. ``sharedsg run`` (through the experiments) and ``sharedsg attach`` both use it.
"""

from __future__ import annotations

import time
from typing import Dict, List

from omegaconf import DictConfig
from tqdm import tqdm

from sharedsg.harness.backend import Backend
from sharedsg.harness.runlog import RunLog
from sharedsg.harness.schedule import scheduled

History = Dict[str, Dict[str, List[float]]]
"""stream -> {"iteration": [...], "loss/eval": [...], "updates": [iterations it trained at], and per
SG fit metric (``sg/<c>/cosine``, ``rel_mse``, ``norm_ratio``) its value at each of those steps}."""
SG_FIT = ("cosine", "rel_mse", "norm_ratio")  # the step metrics sg/<c>/<these> kept in the history


def train_loop(cfg: DictConfig, backend: Backend, log: RunLog, desc: str = "") -> History:
    """Add ``cfg.streams`` to the backend and run ``experiment.iterations`` iterations of their schedules."""
    backend.add_streams(cfg.streams)
    for name in cfg.streams:
        log.config(name, cfg)
    history: History = {n: {"iteration": [], "loss/eval": [], "updates": []} for n in cfg.streams}
    bar = tqdm(range(cfg.experiment.iterations), desc=desc or cfg.experiment.name,
               disable=not cfg.experiment.progress, unit="it", leave=False)
    for it in bar:
        names = scheduled(cfg, it)
        t0 = time.perf_counter()
        results = backend.train(names, it) if names else {}
        elapsed = time.perf_counter() - t0
        for name, metrics in results.items():
            history[name]["updates"].append(it)
            for key, value in metrics.items():
                if key.startswith("sg/") and key.rsplit("/", 1)[-1] in SG_FIT:
                    history[name].setdefault(key, []).append(value)
            metrics = dict(metrics, **{"perf/steps_per_s": len(names) / elapsed if elapsed > 0 else 0.0})
            log.scalars(name, it, metrics)
        if (it + 1) % cfg.experiment.eval_every == 0 or it == cfg.experiment.iterations - 1:
            for name in cfg.streams:
                ev = backend.evaluate(name)
                log.scalars(name, it, ev)
                history[name]["iteration"].append(it)
                history[name]["loss/eval"].append(ev["loss/eval"])
            bar.set_postfix({n: f"{h['loss/eval'][-1]:.4f}" for n, h in history.items()})
    log.flush()
    return history
