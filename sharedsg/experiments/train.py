"""The generic experiment (``experiment.kind=train``): the config's streams on one backend,
``results.json`` at the end."""

from __future__ import annotations

import time
from typing import Dict

from omegaconf import DictConfig

from sharedsg.harness.launcher import Launcher
from sharedsg.harness.loop import train_loop
from sharedsg.harness.runlog import RunLog, write_json_atomic


def run_training(cfg: DictConfig, launcher: Launcher, log: RunLog) -> Dict[str, object]:
    """The ``train`` experiment: one backend, the config's streams, ``results.json``."""
    started = time.perf_counter()
    backend = launcher.backend(cfg, log)
    try:
        history = train_loop(cfg, backend, log)
        versions = backend.sg_versions()
    finally:
        backend.close()
    results = {
        "experiment": cfg.experiment.name,
        "run": cfg.experiment.run_name,
        "iterations": cfg.experiment.iterations,
        "wall_time_s": time.perf_counter() - started,
        "sg_versions": versions,
        "streams": {
            n: {"steps": len(h["updates"]), "final_loss_eval": h["loss/eval"][-1],
                "curve": {"iteration": h["iteration"], "loss/eval": h["loss/eval"]}}
            for n, h in history.items()
        },
    }
    write_json_atomic(log.path / "results.json", results)
    return results
