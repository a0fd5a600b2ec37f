"""Sec. 5.2, knowledge sharing with controller SGs: a cyclist and a pedestrian NMN stream.

The cyclist stream trains every iteration; the pedestrian stream only at its scheduled
iterations (after the first 100, every 100th, with 10 examples: ``streams.pedestrian.schedule``).
Two arms run side by side with the same seeds: ``shared`` (one SG group for both streams)
and ``separate`` (an SG group per stream). ``sg.sharing`` picks them: ``both`` (the config's
default here) runs both arms, ``shared`` or ``separate`` only that one. Each seed of
``experiment.seeds`` is one run of the backend (two streams per arm), so on Ray both arms of a
seed train in parallel; the seeds run one after another on the same actors, each started over
for its seed as new actors would start (:meth:`~sharedsg.harness.backend.Backend.reset`). A
stream's group is the one :func:`~sharedsg.harness.stream.sharing_group` gives under its arm's
sharing.

Outputs in the run directory: TensorBoard under ``seed<S>/<arm>-<role>/``, Fig. 8-style
learning curves (``fig8_learning_curves.png``), Fig. 9-style trajectories
(``fig9_trajectories.png``) and ``results.json`` (held-out MSE, final and area under the
curve, per arm and role, mean and spread over seeds; per seed and stream, the second-half mean
of each controller's SG fit, ``sg_fit``: cosine, relative MSE and norm ratio, docs/results/sg_fit.md).
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sharedsg.config import Config
from sharedsg.data.sources import make_source
from sharedsg.errors import UserError
from sharedsg.experiments.summary import auc, spread
from sharedsg.harness.backend import Backend
from sharedsg.harness.runlog import RunLog, write_json_atomic
from sharedsg.harness.launcher import Launcher
from sharedsg.harness.loop import train_loop
from sharedsg.harness.stream import sharing_group

ARMS = ("shared", "separate")
ROLES = ("cyclist", "pedestrian")


def arms_of(cfg: DictConfig) -> Tuple[str, ...]:
    """The arms ``sg.sharing`` asks for: both, or the one it names."""
    return ARMS if cfg.sg.sharing == "both" else (str(cfg.sg.sharing),)


def arm_streams(cfg: DictConfig, seed: int) -> Dict[str, dict]:
    """The streams of one seed: ``<arm>-<role>`` for every arm, with the SG group of their arm.

    Both arms' streams of a role get the same seed, so they start from the same weights.
    """
    missing = [r for r in ROLES if r not in cfg.streams]
    if missing:
        raise UserError(f"streams: knowledge_sharing needs streams {', '.join(ROLES)}; missing {', '.join(missing)}")
    out = {}
    for arm in arms_of(cfg):
        for i, role in enumerate(ROLES):
            base = OmegaConf.to_container(cfg.streams[role], resolve=True)
            base["group"] = sharing_group(arm, f"{arm}-{role}")
            base["seed"] = seed * 1000 + i
            out[f"{arm}-{role}"] = base
    return out


def seed_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The config of one seed: its four streams replace the two of the YAML."""
    c = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.to_container(cfg, resolve=True))
    c.experiment.seed = seed
    c.sg.sharing = "shared"  # the arms' groups are explicit
    c.streams = {}
    c.streams = OmegaConf.merge(c.streams, arm_streams(cfg, seed))
    return c


def _fig9_rows(cfg: DictConfig, backend, n_per_role: int) -> List[dict]:
    rows = []
    for role in ROLES:
        src = make_source(cfg.data, role, "test", 0)
        batch = next(iter(src.eval_batches(n_per_role, 1)))
        preds = {arm: backend.predict(f"{arm}-{role}", batch.x, batch.y.shape[1]).numpy() for arm in arms_of(cfg)}
        for j in range(len(batch)):
            rows.append({"observed": batch.x[j].numpy(), "future": batch.y[j].numpy(), "title": f"{role} {j + 1}",
                         **{arm: preds[arm][j] for arm in preds}})
    return rows


def run_knowledge_sharing(cfg: DictConfig, launcher: Launcher, log: RunLog) -> Dict[str, object]:
    started = time.perf_counter()
    seeds = [int(s) for s in cfg.experiment.seeds]
    if not seeds:
        raise UserError("experiment.seeds: give at least one seed, e.g. experiment.seeds=[0,1,2]")
    histories: Dict[int, dict] = {}
    versions: Dict[int, dict] = {}
    rows: List[dict] = []
    backend: Optional[Backend] = None
    logs: List[RunLog] = []  # each seed's, open until the backend has ended its run
    try:
        for seed in seeds:
            scfg = seed_config(cfg, seed)
            logs.append(log.child(f"seed{seed}"))
            if backend is None:
                backend = launcher.backend(scfg, logs[-1])
            else:  # the actors of the seeds before, started over (the seed before's last state into its log)
                backend.reset(scfg, logs[-1])
                logs.pop(0).close()
            histories[seed] = train_loop(scfg, backend, logs[-1], desc=f"{cfg.experiment.name} seed {seed}")
            versions[seed] = backend.sg_versions()
            if seed == seeds[0]:
                with torch.no_grad():
                    rows = _fig9_rows(cfg, backend, 3)
    finally:
        if backend is not None:
            backend.close()
        for seed_log in logs:
            seed_log.close()
    arms = arms_of(cfg)
    iterations = histories[seeds[0]][f"{arms[0]}-cyclist"]["iteration"]
    curves = {role: {arm: [histories[s][f"{arm}-{role}"]["loss/eval"] for s in seeds] for arm in arms}
              for role in ROLES}
    updates = {role: histories[seeds[0]][f"{arms[0]}-{role}"]["updates"] for role in ROLES}
    _tensorboard_overlay(log, curves, iterations, updates, seeds)
    from sharedsg.experiments import figures  # matplotlib: loaded to draw, not while the actors run

    fig8 = figures.learning_curves(curves, iterations, {"pedestrian": updates["pedestrian"]},
                                   "Knowledge sharing (Fig. 8)")
    log.figure("figures", "fig8_learning_curves", fig8)
    figures.save(fig8, log.path / "fig8_learning_curves.png")
    fig9 = figures.trajectories(rows, f"Seed {seeds[0]}: predictions on held-out tracks (Fig. 9)",
                                {arm: f"{arm} SG" for arm in arms})
    log.figure("figures", "fig9_trajectories", fig9)
    figures.save(fig9, log.path / "fig9_trajectories.png")
    log.flush()
    results = {
        "experiment": cfg.experiment.name,
        "run": cfg.experiment.run_name,
        "kind": "knowledge_sharing",
        "seeds": seeds,
        "iterations": int(cfg.experiment.iterations),
        "eval_iterations": iterations,
        "updates": updates,
        "metric": "MSE on held-out tracks (coordinates scaled to [-0.5, 0.5])",
        "wall_time_s": time.perf_counter() - started,
        "sg_versions": {str(s): v for s, v in versions.items()},
        "mse": {
            role: {
                arm: {
                    "final": spread([c[-1] for c in curves[role][arm]]),
                    "auc": spread([auc(iterations, c) for c in curves[role][arm]]),
                }
                for arm in arms
            }
            for role in ROLES
        },
        "curves": curves,
        "sg_fit": {str(s): {stream: second_half_means(h, int(cfg.experiment.iterations)) for stream, h in hist.items()}
                   for s, hist in histories.items()},
    }
    write_json_atomic(log.path / "results.json", results)
    return results


def second_half_means(history: Dict[str, list], iterations: int) -> Dict[str, Dict[str, float]]:
    """controller -> {cosine, rel_mse, norm_ratio}: the mean of a stream's step metrics
    ``sg/<c>/<metric>`` over its steps in the second half of the run (iteration >= iterations / 2)."""
    late = [i for i, it in enumerate(history["updates"]) if it >= iterations / 2]
    out: Dict[str, Dict[str, float]] = {}
    for key, values in history.items():
        if key.startswith("sg/") and late:
            _, c, metric = key.split("/")
            out.setdefault(c, {})[metric] = float(np.mean([values[i] for i in late]))
    return out


def _tensorboard_overlay(log: RunLog, curves, iterations, updates, seeds) -> None:
    """Both arms' held-out curves (seed mean) under one tag per role, in writers ``overlay/<arm>``,
    so TensorBoard draws them in one chart; ``schedule/<role>_update`` marks the update iterations."""
    arms = list(curves[ROLES[0]])
    for arm in arms:
        for role in ROLES:
            mean = np.mean(np.asarray(curves[role][arm], dtype=float), axis=0)
            for it, v in zip(iterations, mean):
                log.scalars(f"overlay/{arm}", it, {f"knowledge_sharing/{role}_mse_eval": float(v)})
    for role in ROLES:
        for it in updates[role]:
            log.scalars("overlay/schedule", it, {f"schedule/{role}_update": 1.0})
    log.writer(f"overlay/{arms[0]}").add_custom_scalars({
        "knowledge_sharing": {
            f"{role} held-out MSE, shared vs separate SG (mean of {len(seeds)} seeds)":
                ["Multiline", [f"knowledge_sharing/{role}_mse_eval"]]
            for role in ROLES
        }
    })


def format_table(results: Dict[str, object]) -> str:
    """The results table printed at the end of a run: held-out MSE per role and arm."""
    seeds = results["seeds"]
    lines = [f"Knowledge sharing (Sec. 5.2): held-out MSE, mean +- std over seeds {seeds}",
             f"{'stream':<12}{'SG':<10}{'final MSE':>22}{'area under curve':>24}"]
    for role in ROLES:
        for arm in results["mse"][role]:
            m = results["mse"][role][arm]
            lines.append(f"{role:<12}{arm:<10}{m['final']['mean']:>14.5f} +- {m['final']['std']:<7.5f}"
                         f"{m['auc']['mean']:>14.5f} +- {m['auc']['std']:<7.5f}")
    return "\n".join(lines)
