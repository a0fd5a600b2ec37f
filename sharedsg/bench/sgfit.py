"""``sharedsg bench sg-fit``: how well SG predictors predict the true gradients (Eq. 9, 11), offline.

Target sets (h_c, y, g_c = dL/dh_c) are recorded from real learners stepping on real data:

- ``trajectory``: a :class:`~sharedsg.learn.stream.StreamLearner` on the demo's shape
  (configs/knowledge_sharing.yaml's model, 50 observed + 50 predicted frames, batch 16, the
  cyclist stream of the shipped SDD sample), ``learner.mixing=bp_only``: the baseline's trajectory;
- ``omniglot_5w1s``: the few-shot NMN memory learner (:mod:`sharedsg.learn.fewshot`, the baseline
  of configs/omniglot/5w1s.yaml, 16 episodes per meta-update): the targets of the support steps
  (IC and OC, the controllers the fast step moves). Skipped, with one line, without Omniglot.

The first (1 - ``--holdout``) of the records, in recording order, train one predictor per
controller (``--passes`` passes, one Eq. 11 update per record, as the SG server does per push:
the running RMS of the targets first, then one Adam step); the last ``--holdout`` are held out.
On the held-out sets, per controller: cosine of the flattened s and g, relative MSE = MSE /
mean(g^2) (a zero predictor scores 1.0) and norm ratio = mean ||s|| / mean ||g|| (per sample and
step). Each setting changes one thing of the configured ``sg.*``: raw vs scaled targets
(``sg.target_scaling``), ``sg.lr``, ``sg.hidden``, ``sg.kind``, and what the predictor is
conditioned on (``h`` only or ``y`` only: the other input zeroed; for trajectories,
``sg.y_frame``). ``--ceiling`` adds a larger predictor (``--ceiling-hidden``) trained for
``--ceiling-passes`` passes on ``--ceiling-factor`` times the records: the same learner recorded
that much longer, the same sets held out, every other set (before and after them) trained on.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, List, Tuple

import torch
from omegaconf import DictConfig

from sharedsg.config import load_config
from sharedsg.errors import UserError
from sharedsg.learn.adam import Adam
from sharedsg.learn.types import SGTargets
from sharedsg.model.synthetic import SGPredictor, sg_fit_metrics

# configs/knowledge_sharing.yaml's model and data shape (configs/ is not part of the installed package)
DEMO = ["model.encoder=lstm", "model.encoder_hidden=30", "model.slots=10", "model.slot_width=32",
        "model.decoder=regression", "model.output_dim=2", "data.format=sample", "data.obs_len=50",
        "data.pred_len=50", "learner.batch_size=16", "learner.mixing=bp_only", "sg.kind=lstm"]
# configs/omniglot/5w1s.yaml's model and episodes
FEWSHOT_5W1S = ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification", "model.slots=10",
                "model.output_dim=5", "data.format=omniglot", "fewshot.ways=5", "fewshot.shots=1",
                "fewshot.queries=5", "fewshot.meta_batch=16", "learner.fast_lr=0.03"]
Records = List[SGTargets]


def record_trajectory(cfg: DictConfig, n: int, seed: int) -> Dict[str, Records]:
    """``n`` target sets from a StreamLearner stepping on the cyclist stream's training batches,
    with y in either frame of ``sg.y_frame``: {"decoder": ..., "data": ...}."""
    from sharedsg.data.sources import make_source
    from sharedsg.learn.stream import StreamLearner

    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=seed)
    src = make_source(cfg.data, "cyclist", "train", seed)
    out: Dict[str, Records] = {"decoder": [], "data": []}
    for _ in range(n):
        batch = src.next_batch(int(cfg.learner.batch_size))
        t = learner.step(batch).targets
        for frame in out:
            learner.y_frame = frame
            out[frame].append(SGTargets(t.h, learner.sg_condition(batch), t.g))
    return out


def record_fewshot(cfg: DictConfig, n: int, seed: int) -> Dict[str, Records]:
    """``n`` target sets from the baseline few-shot NMN's meta-updates on Omniglot training episodes:
    the support steps' IC and OC outputs, one-hot labels and the query loss's gradients (one frame)."""
    from sharedsg.experiments.omniglot import OmniglotEpisodes
    from sharedsg.learn.fewshot import FewShotNMNMethod
    from sharedsg.model.fewshot import FAST_CONTROLLERS

    records: Records = []

    class Recorder(FewShotNMNMethod):
        def train_sg(self, first, labels, targets) -> None:  # record what Eq. 11 would be trained on
            y = torch.nn.functional.one_hot(labels, self.ways).float()
            records.append(SGTargets({c: first.outputs(c).detach() for c in FAST_CONTROLLERS}, y,
                                     {c: targets[c].detach() for c in FAST_CONTROLLERS}))

    ways, mb = int(cfg.fewshot.ways), int(cfg.fewshot.meta_batch)
    torch.manual_seed(seed)
    method = Recorder(cfg, ways, seed, fast=False, train_sg=True)
    episodes = OmniglotEpisodes(cfg, ways, int(cfg.fewshot.shots), train_seed=seed)
    for i in range(n):
        method.meta_step([episodes.episode("train", i * mb + j) for j in range(mb)])
    return {"decoder": records}


def _inputs(condition: str) -> Callable[[SGTargets, str], Tuple[torch.Tensor, torch.Tensor]]:
    """(h, y) as the predictor sees them: ``hy`` both (Eq. 9), ``h`` or ``y`` alone (the other zeroed)."""
    def inputs(t: SGTargets, c: str) -> Tuple[torch.Tensor, torch.Tensor]:
        h, y = t.h[c], t.y
        return (torch.zeros_like(h) if condition == "y" else h), (torch.zeros_like(y) if condition == "h" else y)
    return inputs


def fit(train: Records, held: Records, sg: Dict[str, object], passes: int, seed: int) -> Dict[str, Dict[str, float]]:
    """Per controller: predictors with the ``sg`` settings (kind, hidden, lr, target_scaling,
    scale_momentum; condition) trained by Eq. 11 on ``train`` (one update per set, ``passes``
    times), then {cosine, rel_mse, norm_ratio} on ``held`` (all held-out sets together)."""
    torch.manual_seed(seed + 7919)
    inputs = _inputs(str(sg["condition"]))
    out: Dict[str, Dict[str, float]] = {}
    for c in train[0].h:
        pred = SGPredictor(train[0].h[c].shape[-1], train[0].y.shape[-1], int(sg["hidden"]), str(sg["kind"]),
                           scaling=str(sg["target_scaling"]), momentum=float(sg["scale_momentum"]))
        opt = Adam(pred.parameters(), lr=float(sg["lr"]))
        for _ in range(passes):
            for t in train:
                pred.observe([t.g[c]])
                pred.fit_loss(*inputs(t, c), t.g[c]).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            s = torch.cat([pred(*inputs(t, c)).flatten(0, 1) for t in held])
            g = torch.cat([t.g[c].flatten(0, 1) for t in held])
        m = sg_fit_metrics(s, g)
        out[c] = {k: round(float(m[k]), 4) for k in ("cosine", "rel_mse", "norm_ratio")}
    return out


def settings(sg: DictConfig, which: List[str], frames: List[str]) -> Dict[str, Dict[str, object]]:
    """name -> the sg settings a fit uses: the configured ones, then each alternative in ``which``
    with one thing changed (``frames``: the y frames recorded, the others compared under condition)."""
    base: Dict[str, object] = {k: sg[k] for k in ("kind", "hidden", "lr", "target_scaling", "scale_momentum")}
    base["condition"] = "hy"
    base["y_frame"] = str(sg.y_frame) if str(sg.y_frame) in frames else frames[0]
    lr, hidden = float(sg.lr), int(sg.hidden)
    other = {"kind": "mlp" if sg.kind == "lstm" else "lstm",
             "target_scaling": "none" if sg.target_scaling == "rms" else "rms"}
    alternatives = {
        "scaling": [("target_scaling", other["target_scaling"])],
        "lr": [("lr", lr / 10), ("lr", lr / 3), ("lr", lr * 3)],
        "hidden": [("hidden", max(1, hidden // 2)), ("hidden", hidden * 2)],
        "kind": [("kind", other["kind"])],
        "condition": [("condition", "h"), ("condition", "y")] + [("y_frame", f) for f in frames if f != base["y_frame"]],
    }
    out = {"configured": base} if "configured" in which else {}
    for name in which:
        for key, value in alternatives.get(name, []):
            out[f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"] = {**base, key: value}
    return out


def _split(n: int, holdout: float) -> int:
    """How many of ``n`` records train (the rest are held out); a clear error when either part is empty."""
    cut = int(round(n * (1 - holdout)))
    if not 0 < cut < n:
        raise UserError(f"--holdout {holdout:g} of {n} target sets leaves no training or no held-out set; "
                        "give a share from 0.05 to 0.5")
    return cut


def _task(name: str, frames: Dict[str, Records], args: argparse.Namespace, sg: DictConfig,
          record_s: float) -> Dict[str, object]:
    """Every setting's held-out numbers for one task (flat keys ``<task>/<setting>/<c>``). ``frames``: y
    frame -> ``--records`` sets, then (with ``--ceiling``) the same learner's next ones, which only the
    ceiling uses."""
    total = len(next(iter(frames.values())))
    n = total // (args.ceiling_factor if args.ceiling else 1)
    cut = _split(n, args.holdout)
    g = next(iter(frames.values()))[:n]
    out: Dict[str, object] = {f"{name}/records": f"{cut} train, {n - cut} held out (the last)",
                              f"{name}/record_s": round(record_s, 1)}
    out[f"{name}/target_rms"] = {c: float(torch.cat([t.g[c].flatten() for t in g]).pow(2).mean().sqrt())
                                 for c in g[0].g}
    chosen = settings(sg, args.settings, list(frames))
    for label, s in chosen.items():
        start = time.perf_counter()
        records = frames[str(s["y_frame"])]
        for c, m in fit(records[:cut], records[cut:n], s, args.passes, args.seed).items():
            out[f"{name}/{label}/{c}"] = m
        out[f"{name}/{label}/fit_s"] = round(time.perf_counter() - start, 1)
    if args.ceiling:
        start = time.perf_counter()
        s = {**settings(sg, ["configured"], list(frames))["configured"], "hidden": args.ceiling_hidden}
        records = frames[str(s["y_frame"])]
        big = records[:cut] + records[n:]  # the held-out sets stay out; the learner's later sets come in
        for c, m in fit(big, records[cut:n], s, args.ceiling_passes, args.seed).items():
            out[f"{name}/ceiling/{c}"] = m
        out[f"{name}/ceiling/setting"] = (f"hidden={args.ceiling_hidden}, {len(big)} train sets, "
                                          f"{args.ceiling_passes} passes")
        out[f"{name}/ceiling/fit_s"] = round(time.perf_counter() - start, 1)
    return out


def run_sg_fit_bench(args: argparse.Namespace) -> Dict[str, object]:
    """``sharedsg bench sg-fit``: record, fit, report (flat keys ``<task>/<setting>/<controller>``)."""
    from sharedsg.data.sources import resolve_root

    for n in (args.records, args.fewshot_records):
        _split(n, args.holdout)
    torch.set_num_threads(args.threads)
    out: Dict[str, object] = {}
    factor = args.ceiling_factor if args.ceiling else 1
    if "trajectory" in args.tasks:
        cfg = load_config(None, DEMO + list(args.overrides))
        t0 = time.perf_counter()
        records = record_trajectory(cfg, args.records * factor, args.seed)
        out.update(_task("trajectory", records, args, cfg.sg, time.perf_counter() - t0))
    if "omniglot_5w1s" in args.tasks:
        cfg = load_config(None, FEWSHOT_5W1S + list(args.overrides))
        if not (resolve_root(cfg.data) / "omniglot").exists():
            out["omniglot_5w1s"] = f"skipped: no Omniglot under {resolve_root(cfg.data)} (sharedsg data get omniglot)"
        else:
            t0 = time.perf_counter()
            records = record_fewshot(cfg, args.fewshot_records * factor, args.seed)
            out.update(_task("omniglot_5w1s", records, args, cfg.sg, time.perf_counter() - t0))
    return out
