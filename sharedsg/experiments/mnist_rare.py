"""MNIST rare-class ablation (paper Sec. 5.1, Fig. 6 and 7).

The Omniglot NMN (conv encoder, 10 memory slots, dense softmax decoder) on 10-way MNIST.
Every iteration is one training step on a batch of ``learner.batch_size`` images of classes
0-4, except the rare iterations ``period``, ``2 * period``, ... (:class:`RareClassSchedule`),
whose batch is ``rare.rare_batch`` images of classes 5-9. Iterations are counted from 0, so
the first ``period`` iterations (0 .. period-1) see classes 0-4 only. The test set is unseen
MNIST test images of classes 5-9.

Logged per iteration (TensorBoard, ``<job>/``): ``grad_norm/oc/synthetic`` and
``grad_norm/oc/true`` (the output controller's synthetic and back-propagated gradient, mean L2
norm per sample), ``loss/train``, ``schedule/rare`` (1 at rare iterations, 0 elsewhere); and
``accuracy/rare_test`` every ``rare.test_every`` iterations and right after each rare one.
Methods: ``proposed`` (``rare.proposed_mixing``, default true + synthetic) and ``baseline``
(``bp_only``); the SG predictors are trained on the true-gradient targets in both, so the
baseline's synthetic norm is what an SG would have said, though it never reaches the controllers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sharedsg import checkpoint
from sharedsg.data.batch import Batch
from sharedsg.data.mnist import RareClassSchedule, load_mnist
from sharedsg.data.sources import resolve_root
from sharedsg.harness.jobs import Progress, Scalar
from sharedsg.learn.sg import SGLearner
from sharedsg.learn.stream import StreamLearner


def rare_jobs(cfg: DictConfig) -> List[str]:
    return list(cfg.rare.methods)


def _x(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / np.float32(255.0))[:, None, None]


class RareJob:
    """One method's run of the Sec. 5.1 schedule; resumable from its checkpoint."""

    def __init__(self, cfg: DictConfig, name: str) -> None:
        self.cfg, self.name, self.method = cfg, name, name
        rare = cfg.rare
        self.schedule = RareClassSchedule(period=int(rare.period), rare_batch=int(rare.rare_batch))
        model = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
        model.output_dim = 10
        mixing = "bp_only" if name == "baseline" else str(rare.proposed_mixing)
        seed = int(cfg.experiment.seed)
        self.learner = StreamLearner(model, OmegaConf.merge(cfg.learner, {"mixing": mixing}), cfg.sg, seed=seed)
        self.sg = SGLearner(model, cfg.sg, seed=seed)
        self.learner.load_sg(self.sg.state())
        root = resolve_root(cfg.data) / "mnist"
        train, test = load_mnist(root, "train"), load_mnist(root, "test")
        self.pools = {"common": train.select("common"), "rare": train.select("rare")}
        held = test.select("rare")
        order = np.random.default_rng([int(cfg.data.split_seed), 7919]).permutation(len(held.images))
        if int(rare.test_images) > 0:
            order = order[: int(rare.test_images)]
        self.test_x, self.test_y = _x(held.images[order]), torch.from_numpy(held.labels[order].astype(np.int64))
        self.full_test = held
        self.iteration = 0
        self.scalars: List[Scalar] = []
        self.train_s = 0.0
        self.seed = seed

    def batch(self, iteration: int) -> tuple[Batch, bool]:
        rare = self.schedule.is_rare(iteration)
        pool = self.pools["rare" if rare else "common"]
        size = self.schedule.batch_size(iteration, int(self.cfg.learner.batch_size))
        idx = np.random.default_rng([self.seed, iteration]).choice(len(pool.images), size=size, replace=False)
        return Batch(_x(pool.images[idx]), torch.from_numpy(pool.labels[idx].astype(np.int64))[:, None]), rare

    def test_accuracy(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 500) -> float:
        correct = 0
        for s in range(0, len(x), chunk):
            logits = self.learner.predict(x[s:s + chunk], steps=1)[:, 0]
            correct += int((logits.argmax(-1) == y[s:s + chunk]).sum())
        return correct / max(len(x), 1)

    def state(self) -> Dict[str, object]:
        return {"learner": self.learner.state_dict(), "sg": self.sg.state_dict(), "iteration": self.iteration,
                "scalars": [list(s) for s in self.scalars], "train_s": self.train_s}

    def load(self, state: Dict[str, object]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.sg.load_state_dict(state["sg"])
        self.iteration = int(state["iteration"])
        self.scalars = [(str(t), int(s), float(v)) for t, s, v in state["scalars"]]
        self.train_s = float(state["train_s"])

    def run(self, directory: Path, progress: Progress = None) -> Dict[str, object]:
        cfg, rare = self.cfg, self.cfg.rare
        ckpt = Path(directory) / "checkpoint.pt"
        state = checkpoint.load(ckpt)
        if state is not None:
            self.load(state)
            if progress:
                progress(f"{self.name}: resumed at iteration {self.iteration}")
        total = int(cfg.experiment.iterations)
        t0 = time.perf_counter()
        while self.iteration < total:
            it = self.iteration
            batch, is_rare = self.batch(it)
            result = self.learner.step(batch)
            self.sg.update([result.targets])
            self.learner.load_sg(self.sg.state())
            m = result.metrics
            self.scalars += [("grad_norm/oc/synthetic", it, m["grad_norm/oc/synthetic"]),
                             ("grad_norm/oc/true", it, m["grad_norm/oc/true"]),
                             ("loss/train", it, m["loss/train"]), ("schedule/rare", it, float(is_rare))]
            if (it + 1) % int(rare.test_every) == 0 or self.schedule.is_rare(it) or it == total - 1:
                self.scalars.append(("accuracy/rare_test", it, self.test_accuracy(self.test_x, self.test_y)))
            self.iteration += 1
            if self.iteration % int(rare.checkpoint_every) == 0 or self.iteration == total:
                self.train_s += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint.save(ckpt, self.state())
                if progress:
                    progress(f"{self.name}: iteration {self.iteration}/{total}")
        self.train_s += time.perf_counter() - t0
        return self.results()

    def results(self) -> Dict[str, object]:
        full_x = _x(self.full_test.images)
        full_y = torch.from_numpy(self.full_test.labels.astype(np.int64))
        series: Dict[str, Dict[int, float]] = {}
        for tag, step, value in self.scalars:
            series.setdefault(tag, {})[step] = value
        rare_its = sorted(s for s, v in series.get("schedule/rare", {}).items() if v > 0)
        out: Dict[str, object] = {
            "job": self.name, "method": self.method, "iterations": self.iteration,
            "period": int(self.cfg.rare.period), "rare_batch": int(self.cfg.rare.rare_batch),
            "rare_iterations": rare_its, "train_wall_s": self.train_s,
            "rare_test_accuracy": self.test_accuracy(full_x, full_y), "rare_test_images": int(len(full_y)),
            "scalars": self.scalars,
        }
        for kind in ("synthetic", "true"):
            norms = series.get(f"grad_norm/oc/{kind}", {})
            at = [v for s, v in norms.items() if s in set(rare_its)]
            rest = [v for s, v in norms.items() if s not in set(rare_its)]
            m_at, m_rest = (float(np.mean(at)) if at else float("nan")), (float(np.mean(rest)) if rest else float("nan"))
            out[f"oc_{kind}_norm_rare_mean"] = m_at
            out[f"oc_{kind}_norm_other_mean"] = m_rest
            out[f"oc_{kind}_norm_ratio"] = m_at / m_rest if m_rest and m_rest == m_rest and m_rest > 0 else float("nan")
        accs = series.get("accuracy/rare_test", {})
        out["rare_test_curve"] = [[s, accs[s]] for s in sorted(accs)]
        return out
