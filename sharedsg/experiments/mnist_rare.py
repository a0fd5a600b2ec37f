"""MNIST rare-class ablation (paper Sec. 5.1, Fig. 6 and 7) on the NMN memory learner.

The learner is the Omniglot few-shot NMN (:mod:`sharedsg.learn.fewshot`: conv encoder, 10
memory slots, IC/OC/WC, dense decoder) with the 10 MNIST labels as its outputs. Every
iteration is one training step on a batch of ``learner.batch_size`` images of classes 0-4,
except the rare iterations ``period``, ``2 * period``, ... (:class:`RareClassSchedule`), whose
batch is ``rare.rare_batch`` images of classes 5-9. A batch is one sequence: its first half
enters with its labels (support items, written to the memory), its second half are the
queries, and the loss is the queries' cross-entropy. ``proposed`` adds the per-sequence fast
step of Eq. 10 from synthetic gradients; ``baseline`` does not. Both train SG predictors on
the true targets (Eq. 11), so the baseline's synthetic norm is what an SG would have said.

Test: unseen MNIST test images of classes 5-9 as queries after a context of
``rare.test_context`` labelled training images of each class 0-4 (no rare image in the
context, so what is measured is what the weights learned from the rare batches). Reported:
10-way accuracy, accuracy among the logits of classes 5-9 only, and the true class's mean
rank among the 10 logits (1 = top).

Logged per iteration (TensorBoard, ``<job>/``): ``grad_norm/oc/synthetic`` and
``grad_norm/oc/true`` (the output controller's synthetic and true gradient on its support
outputs, mean L2 norm per item: Fig. 6's spikes), ``loss/train``, ``schedule/rare`` (1 at rare
iterations, 0 elsewhere); and ``accuracy/rare_test`` every ``rare.test_every`` iterations and
right after each rare one.

The job computes on ``learner.device`` (the GPU a job actor was given, or ``--local``'s
setting): its model, every training batch, the test context and the test images live there.
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
from sharedsg.data.episodes import Episode
from sharedsg.data.mnist import RareClassSchedule, load_mnist
from sharedsg.data.sources import resolve_root
from sharedsg.harness.jobs import Progress, Scalar
from sharedsg.harness.resume import resume
from sharedsg.learn.fewshot import FewShotNMNMethod

CLASSES = 10
RARE = (5, 6, 7, 8, 9)


def rare_jobs(cfg: DictConfig) -> List[str]:
    return list(cfg.rare.methods)


def _x(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / np.float32(255.0))[:, None]


def _episode(x: torch.Tensor, y: torch.Tensor, support: int) -> Episode:
    """A batch as one sequence: the first ``support`` items with labels, the rest as queries."""
    return Episode(x[:support], y[:support], x[support:], y[support:], torch.arange(CLASSES),
                   torch.zeros(CLASSES, dtype=torch.long))


def rare_scores(logits: torch.Tensor, y: torch.Tensor) -> Dict[str, float]:
    """10-way accuracy, accuracy among the logits of classes 5-9 only, mean rank of the true class (1 = top)."""
    rank = 1 + (logits > logits.gather(1, y[:, None])).sum(1).float()
    among = torch.tensor(RARE, device=logits.device)[logits[:, list(RARE)].argmax(-1)]
    return {"accuracy": float((logits.argmax(-1) == y).float().mean()),
            "accuracy_among_rare": float((among == y).float().mean()), "mean_rank": float(rank.mean())}


class RareJob:
    """One method's run of the Sec. 5.1 schedule; resumable from its checkpoint."""

    def __init__(self, cfg: DictConfig, name: str) -> None:
        self.cfg, self.name, self.method = cfg, name, name
        self.device = torch.device(cfg.learner.device)
        rare = cfg.rare
        self.schedule = RareClassSchedule(period=int(rare.period), rare_batch=int(rare.rare_batch))
        seed = int(cfg.experiment.seed)
        fs_cfg = OmegaConf.merge(cfg, {"fewshot": {"meta_lr": float(cfg.learner.lr)}})
        self.learner = FewShotNMNMethod(fs_cfg, CLASSES, seed, fast=name == "proposed", train_sg=True)
        root = resolve_root(cfg.data) / "mnist"
        train, test = load_mnist(root, "train"), load_mnist(root, "test")
        self.pools = {"common": train.select("common"), "rare": train.select("rare")}
        held = test.select("rare")
        order = np.random.default_rng([int(cfg.data.split_seed), 7919]).permutation(len(held.images))
        if int(rare.test_images) > 0:
            order = order[: int(rare.test_images)]
        self.test_x = _x(held.images[order]).to(self.device)
        self.test_y = torch.from_numpy(held.labels[order].astype(np.int64)).to(self.device)
        self.full_test = held
        common = self.pools["common"]
        rng = np.random.default_rng([int(cfg.data.split_seed), 104729])
        pick = np.concatenate([rng.choice(np.flatnonzero(common.labels == c), int(rare.test_context), replace=False)
                               for c in range(5)])
        pick = pick[rng.permutation(len(pick))]
        self.context_x = _x(common.images[pick]).to(self.device)
        self.context_y = torch.from_numpy(common.labels[pick].astype(np.int64)).to(self.device)
        self.iteration = 0
        self.scalars: List[Scalar] = []
        self.train_s = 0.0
        self.seed = seed

    def batch(self, iteration: int) -> tuple[Batch, bool]:
        rare = self.schedule.is_rare(iteration)
        pool = self.pools["rare" if rare else "common"]
        size = self.schedule.batch_size(iteration, int(self.cfg.learner.batch_size))
        idx = np.random.default_rng([self.seed, iteration]).choice(len(pool.images), size=size, replace=False)
        batch = Batch(_x(pool.images[idx]), torch.from_numpy(pool.labels[idx].astype(np.int64))[:, None])
        return batch.to(self.device), rare

    def test_logits(self, x: torch.Tensor, chunk: int = 500) -> torch.Tensor:
        """Logits (n, 10) of test images, each a query after the common-class context."""
        out = []
        for s in range(0, len(x), chunk):
            queries = x[s:s + chunk].to(self.device)
            ep = Episode(self.context_x, self.context_y, queries,
                         torch.zeros(len(queries), dtype=torch.long, device=self.device),
                         torch.arange(CLASSES), torch.zeros(CLASSES, dtype=torch.long))
            out.append(self.learner.query_logits([ep])[0])
        return torch.cat(out)

    def test_accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return rare_scores(self.test_logits(x), y.to(self.device))["accuracy"]

    def state(self) -> Dict[str, object]:
        return {"learner": self.learner.state_dict(), "iteration": self.iteration,
                "scalars": [list(s) for s in self.scalars], "train_s": self.train_s}

    def load(self, state: Dict[str, object]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.iteration = int(state["iteration"])
        self.scalars = [(str(t), int(s), float(v)) for t, s, v in state["scalars"]]
        self.train_s = float(state["train_s"])

    def position(self) -> str:
        return f"iteration {self.iteration}"

    def run(self, directory: Path, progress: Progress = None) -> Dict[str, object]:
        cfg, rare = self.cfg, self.cfg.rare
        ckpt = resume(self, directory, progress)
        total = int(cfg.experiment.iterations)
        t0 = time.perf_counter()
        while self.iteration < total:
            it = self.iteration
            batch, is_rare = self.batch(it)
            m = self.learner.meta_step([_episode(batch.x, batch.y[:, 0], len(batch) // 2)])
            self.scalars += [("grad_norm/oc/synthetic", it, m["grad_norm/oc/synthetic"]),
                             ("grad_norm/oc/true", it, m["grad_norm/oc/true"]),
                             ("loss/train", it, m["loss/query_train"]), ("schedule/rare", it, float(is_rare))]
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
        full_y = torch.from_numpy(self.full_test.labels.astype(np.int64)).to(self.device)
        series: Dict[str, Dict[int, float]] = {}
        for tag, step, value in self.scalars:
            series.setdefault(tag, {})[step] = value
        rare_its = sorted(s for s, v in series.get("schedule/rare", {}).items() if v > 0)
        out: Dict[str, object] = {
            "job": self.name, "method": self.method, "iterations": self.iteration,
            "period": int(self.cfg.rare.period), "rare_batch": int(self.cfg.rare.rare_batch),
            "rare_iterations": rare_its, "train_wall_s": self.train_s,
            "rare_test_images": int(len(full_y)), "test_context": [int(v) for v in self.context_y],
            "scalars": self.scalars,
        }
        scores = rare_scores(self.test_logits(full_x), full_y)
        out.update(rare_test_accuracy=scores["accuracy"], rare_test_accuracy_among_rare=scores["accuracy_among_rare"],
                   rare_test_mean_rank=scores["mean_rank"])
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
