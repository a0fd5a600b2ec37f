"""Sec. 4.2 / Fig. 4-5, trajectory meta-testing: pre-train on cyclists, adapt on pedestrians.

Every method gets the same data and iterations:

1. pre-training: ``metatest.pretrain_iterations`` iterations on batches of cyclist windows
   from ``data.max_train_tracks`` (150) training tracks;
2. adaptation: ``metatest.adapt_iterations`` steps on the same ``metatest.adapt_examples``
   (10) pedestrian windows, drawn once per seed; after each step the MSE on held-out
   pedestrian tracks (``metatest.eval_windows`` windows) is recorded.

Methods: ``proposed`` (NMN, ``sum`` of true and synthetic gradients, its SG group trained
on its own targets throughout), ``baseline`` (the same NMN, ``bp_only``), ``maml2`` /
``maml1`` (MAML, second / first order, on the LSTM encoder-decoder: meta-trained on cyclist
tasks of adapt_examples support + adapt_examples query windows, then fine-tuned like the
others) and ``supervised`` (the LSTM encoder-decoder, our stand-in for [50], pre-trained
and fine-tuned with Adam). Every method uses Adam with ``learner.lr`` for pre-training
(MAML: its outer loop) and for adaptation.

Each (method, seed) is one job: on Ray the jobs run as parallel job actors, each computing on
the device Ray gave it (``resources.gpus_per_job``); ``--local`` jobs on ``learner.device``.
A job's networks, its adaptation and held-out batches and every cyclist batch live there.
"""

from __future__ import annotations

import time
from typing import Dict, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn import functional as F

from sharedsg.config import Config
from sharedsg.data.batch import Batch, BatchSource
from sharedsg.data.sources import make_source
from sharedsg.errors import UserError
from sharedsg.harness.endpoint import LocalEndpoint
from sharedsg.harness.launcher import Launcher
from sharedsg.harness.runlog import RunLog, write_json_atomic
from sharedsg.harness.stream import Stream
from sharedsg.experiments.summary import auc, spread
from sharedsg.learn.maml import meta_gradient
from sharedsg.learn.sg import SGLearner
from sharedsg.model.seq2seq import Seq2Seq

METHODS = ("proposed", "baseline", "maml2", "maml1", "supervised")
LABELS = {"proposed": "proposed NMN", "baseline": "baseline NMN", "maml2": "MAML (2nd order)",
          "maml1": "MAML (1st order)", "supervised": "LSTM enc-dec [50]"}
FIG5_WINDOWS = 4


class OnDevice:
    """A training source whose batches are moved to ``device`` (the data are drawn on the CPU, as everywhere)."""

    def __init__(self, source: BatchSource, device: torch.device) -> None:
        self.source, self.device = source, device

    def next_batch(self, size: int) -> Batch:
        return self.source.next_batch(size).to(self.device)


def _data(cfg: DictConfig, seed: int, device: torch.device):
    """Cyclist training source, the adaptation set, the held-out pedestrian set (all on ``device``)
    and 4 Fig. 5 windows (on the CPU: their inputs go into results.json)."""
    cyclists = OnDevice(make_source(cfg.data, "cyclist", "train", seed), device)
    adapt = make_source(cfg.data, "pedestrian", "train", seed).next_batch(int(cfg.metatest.adapt_examples))
    test_src = make_source(cfg.data, "pedestrian", "test", 0)
    n = int(cfg.metatest.eval_windows)
    held = list(test_src.eval_batches(n, 1))[0]
    g = torch.Generator().manual_seed(1234)
    pick = torch.randperm(len(held), generator=g)[:FIG5_WINDOWS]
    return cyclists, adapt.to(device), held.to(device), Batch(held.x[pick], held.y[pick])


def _mse(predict, batch: Batch) -> float:
    with torch.no_grad():
        y_hat = predict(batch.x)
        return float(F.mse_loss(y_hat, batch.y.to(y_hat.device)))


def _nmn_stream(cfg: DictConfig, method: str, seed: int, device: torch.device) -> Stream:
    """The NMN as a stream on the cyclist windows, on ``device``; ``proposed`` joins its own SG
    group (an :class:`SGLearner` in this job), ``baseline`` (``bp_only``) has none."""
    cfg = OmegaConf.merge(cfg, {"learner": {"mixing": "sum" if method == "proposed" else "bp_only"},
                                "streams": {"cyclist": {"data_class": "cyclist", "seed": seed}}})
    stream = Stream(cfg, "cyclist", device=device)
    if method == "proposed":
        stream.join(LocalEndpoint(SGLearner(cfg.model, cfg.sg, seed=seed, device=device)))
    return stream


def _nmn(cfg: DictConfig, method: str, seed: int, device: torch.device, cyclists, adapt: Batch, held: Batch,
         fig5: Batch) -> dict:
    stream = _nmn_stream(cfg, method, seed, device)
    steps = held.y.shape[1]
    for _ in range(int(cfg.metatest.pretrain_iterations)):
        stream.train(cyclists.next_batch(stream.batch_size))
    predict = lambda x: stream.predict(x, steps)  # noqa: E731
    curve = [_mse(predict, held)]
    for _ in range(int(cfg.metatest.adapt_iterations)):
        stream.train(adapt)
        curve.append(_mse(predict, held))
    return {"curve": curve, "fig5": predict(fig5.x).numpy().tolist()}


def _seq2seq_net(cfg: DictConfig, method: str, seed: int, device: torch.device) -> nn.Module:
    """The LSTM encoder-decoder of MAML and ``supervised``, initialised on the CPU (the same
    weights on every device), on ``device``."""
    torch.manual_seed(seed)
    maml = method != "supervised"
    net = Seq2Seq(int(cfg.metatest.seq2seq_hidden), offsets=maml and bool(cfg.metatest.maml_offsets))
    if maml and cfg.metatest.maml_decoder_init == "zero":
        nn.init.zeros_(net.out.weight)  # MAML starts at "stay at the last observed position" (docs/results/trajectory_metatest.md)
        nn.init.zeros_(net.out.bias)
    return net.to(device)


def _seq2seq(cfg: DictConfig, method: str, seed: int, device: torch.device, cyclists, adapt: Batch, held: Batch,
             fig5: Batch) -> dict:
    steps = held.y.shape[1]
    net = _seq2seq_net(cfg, method, seed, device)
    opt = torch.optim.Adam(net.parameters(), lr=float(cfg.learner.lr))
    k = int(cfg.metatest.adapt_examples)
    meta_curve = []  # MAML: the mean query loss at the adapted weights, per meta-iteration
    for _ in range(int(cfg.metatest.pretrain_iterations)):
        opt.zero_grad()
        if method == "supervised":
            batch = cyclists.next_batch(int(cfg.learner.batch_size))
            F.mse_loss(net(batch.x, steps), batch.y).backward()
        else:
            tasks = []
            for _ in range(int(cfg.metatest.maml_tasks)):
                b = cyclists.next_batch(2 * k)
                tasks.append((b.x[:k], b.y[:k], b.x[k:], b.y[k:]))
            params = dict(net.named_parameters())
            grads, query_loss, _ = meta_gradient(net, {n: p.detach() for n, p in params.items()}, F.mse_loss, tasks,
                                                 int(cfg.metatest.maml_inner_steps), float(cfg.metatest.maml_inner_lr),
                                                 order=2 if method == "maml2" else 1, kw={"steps": steps})
            meta_curve.append(query_loss)
            for n, p in params.items():
                p.grad = grads[n]
        opt.step()
    predict = lambda x: net(x, steps)  # noqa: E731
    fine = torch.optim.Adam(net.parameters(), lr=float(cfg.learner.lr))
    curve = [_mse(predict, held)]
    for _ in range(int(cfg.metatest.adapt_iterations)):
        fine.zero_grad()
        F.mse_loss(net(adapt.x, steps), adapt.y).backward()
        fine.step()
        curve.append(_mse(predict, held))
    with torch.no_grad():
        return {"curve": curve, "fig5": predict(fig5.x.to(device)).cpu().numpy().tolist(), "meta_curve": meta_curve}


def run_job(cfg_yaml: str, method: str, seed: int, device: Optional[str] = None) -> dict:
    """One (method, seed): pre-training, adaptation, the held-out curve, on ``device`` (a job
    actor's assigned device; default ``learner.device``). Runs anywhere (no Ray)."""
    cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(cfg_yaml))
    dev = torch.device(device if device is not None else cfg.learner.device)
    started = time.perf_counter()
    cyclists, adapt, held, fig5 = _data(cfg, seed, dev)
    fn = _nmn if method in ("proposed", "baseline") else _seq2seq
    out = fn(cfg, method, seed, dev, cyclists, adapt, held, fig5)
    out.update({"method": method, "seed": seed, "device": str(dev), "wall_time_s": time.perf_counter() - started})
    if seed == int(cfg.experiment.seeds[0]):
        out["fig5_inputs"] = {"observed": fig5.x.numpy().tolist(), "future": fig5.y.numpy().tolist()}
    return out


def run_metatest(cfg: DictConfig, launcher: Launcher, log: RunLog) -> Dict[str, object]:
    started = time.perf_counter()
    methods = list(cfg.metatest.methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"metatest.methods: {', '.join(unknown)} not among {', '.join(METHODS)}")
    seeds = [int(s) for s in cfg.experiment.seeds]
    if not seeds:
        raise UserError("experiment.seeds: give at least one seed, e.g. experiment.seeds=[0,1,2]")
    cfg_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    jobs = [(cfg_yaml, m, s) for s in seeds for m in methods]
    outs = launcher.map(run_job, jobs)
    by = {(o["method"], o["seed"]): o for o in outs}
    iters = list(range(int(cfg.metatest.adapt_iterations) + 1))
    curves = {m: [by[(m, s)]["curve"] for s in seeds] for m in methods}
    for m in methods:
        mean = np.mean(np.asarray(curves[m]), axis=0)
        log.scalars(f"metatest/{m}", 0, {"loss/eval_before_adaptation": float(mean[0])})
        for i, v in zip(iters, mean):
            log.scalars(f"metatest/{m}", i, {"metatest/pedestrian_mse_eval": float(v)})
    from sharedsg.experiments import figures  # matplotlib: loaded to draw, not while the jobs run

    maml = [m for m in methods if m.startswith("maml")]
    if maml:  # MAML's meta-training curve: the query loss at the adapted weights per meta-iteration
        meta_iters = list(range(1, int(cfg.metatest.pretrain_iterations) + 1))
        meta = {m: [by[(m, s)]["meta_curve"] for s in seeds] for m in maml}
        for m in maml:
            for i, v in zip(meta_iters, np.mean(np.asarray(meta[m]), axis=0)):
                log.scalars(f"metatest/{m}", i, {"loss/maml_meta_train": float(v)})
        fig = figures.learning_curves({"cyclist tasks": meta}, meta_iters, {}, "MAML meta-training",
                                      ylabel="query MSE after the inner step")
        figures.save(fig, log.path / "maml_meta_training.png")
    fig4 = figures.learning_curves({"pedestrian": {m: curves[m] for m in methods}}, iters, {},
                                   "Meta-test (Fig. 4)", ylabel="held-out pedestrian MSE")
    log.figure("figures", "fig4_metatest", fig4)
    figures.save(fig4, log.path / "fig4_metatest.png")
    first = by[(methods[0], seeds[0])]["fig5_inputs"]
    rows = [{"observed": np.asarray(first["observed"][j]), "future": np.asarray(first["future"][j]),
             "title": f"pedestrian {j + 1}",
             **{m: np.asarray(by[(m, seeds[0])]["fig5"][j]) for m in methods}} for j in range(FIG5_WINDOWS)]
    fig5 = figures.trajectories(rows, f"Seed {seeds[0]}: after adaptation (Fig. 5)", {m: LABELS[m] for m in methods})
    log.figure("figures", "fig5_predictions", fig5)
    figures.save(fig5, log.path / "fig5_predictions.png")
    mse = {m: {"before_adaptation": spread([c[0] for c in curves[m]]),
               "final": spread([c[-1] for c in curves[m]]),
               "auc": spread([auc(iters, c) for c in curves[m]]),
               "wall_time_s": spread([by[(m, s)]["wall_time_s"] for s in seeds])} for m in methods}
    results: Dict[str, object] = {
        "experiment": cfg.experiment.name, "run": cfg.experiment.run_name, "kind": "metatest", "seeds": seeds,
        "metric": "MSE on held-out pedestrian tracks (coordinates scaled to [-0.5, 0.5])",
        "pretrain_iterations": int(cfg.metatest.pretrain_iterations),
        "adapt_iterations": int(cfg.metatest.adapt_iterations),
        "adapt_examples": int(cfg.metatest.adapt_examples), "mse": mse, "curves": curves,
        "maml_meta_curves": {m: [by[(m, s)]["meta_curve"] for s in seeds] for m in maml},
        "devices": {m: [by[(m, s)]["device"] for s in seeds] for m in methods},  # where each job computed
        "wall_time_s": time.perf_counter() - started,
    }
    if "proposed" in mse and "baseline" in mse:
        p, b = mse["proposed"]["final"]["mean"], mse["baseline"]["final"]["mean"]
        results["proposed_vs_baseline_final_reduction"] = (b - p) / b if b > 0 else 0.0
    write_json_atomic(log.path / "results.json", results)
    log.flush()
    return results


def format_table(results: Dict[str, object]) -> str:
    lines = [f"Trajectory meta-test (Sec. 4.2): held-out pedestrian MSE, mean +- std over seeds {results['seeds']}",
             f"{'method':<20}{'before adapt':>16}{'final':>22}{'AUC':>22}"]
    for m, r in results["mse"].items():
        lines.append(f"{LABELS[m]:<20}{r['before_adaptation']['mean']:>16.5f}"
                     f"{r['final']['mean']:>13.5f} +- {r['final']['std']:<6.4f}"
                     f"{r['auc']['mean']:>13.5f} +- {r['auc']['std']:<6.4f}")
    if "proposed_vs_baseline_final_reduction" in results:
        r = 100 * results["proposed_vs_baseline_final_reduction"]
        lines.append(f"proposed vs baseline NMN, final MSE: {abs(r):.1f}% {'lower' if r >= 0 else 'higher'} "
                     "(paper: 35% lower)")
    return "\n".join(lines)
