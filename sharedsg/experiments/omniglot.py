"""Omniglot N-way K-shot classification (paper Sec. 4.1, Table 1) and the resumable job machinery.

Episodes (:class:`OmniglotEpisodes`): the 1200 Vinyals training characters x 4 rotations for
meta-training, the 423 held-out characters x 4 rotations for validation and test; an episode
draws N classes and K support + Q query drawings of each, labels remapped to 0..N-1
(:class:`~sharedsg.data.episodes.EpisodeSampler`).

Methods (``fewshot.methods``; docs/results/omniglot.md):

* ``proposed`` / ``baseline``: the NMN as a memory-augmented few-shot learner
  (:mod:`sharedsg.learn.fewshot`): one episode is one sequence, B episodes a batch; proposed
  adds the per-episode fast step of Eq. 10 from synthetic gradients, baseline does not.
* ``maml``: Finn et al. (:mod:`.maml`); ``protonet``: Snell et al. (:mod:`.protonet`, not in
  the paper); ``mann``: Santoro et al. (:mod:`sharedsg.learn.mann`).

A *job* is one setting x one method x one training seed. It meta-trains until
``fewshot.meta_iterations`` or its method's ``fewshot.cpu_s`` budget (CPU seconds of its process), logging a validation
accuracy every ``val_every`` iterations (held-out characters, an episode stream disjoint from
the test episodes; used for the curve only, nothing is selected on it), then tests on
``test_episodes`` held-out episodes (the same ones for every method and seed) and reports the
mean with its normal 95% CI. It checkpoints its whole progress into its directory (atomic
writes, ``torch.load(weights_only=True)``), so running it again resumes, and writes its
validation curve as ``curve.png`` there. ``sharedsg run`` / ``sharedsg sweep`` run jobs in this
process (``--local``) or as Ray actors.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from omegaconf import DictConfig

from sharedsg import checkpoint
from sharedsg.config import parse_setting
from sharedsg.data.episodes import Episode, EpisodeSampler
from sharedsg.data.omniglot import OmniglotPool
from sharedsg.data.sources import load_omniglot_cached, resolve_cache, resolve_root
from sharedsg.harness.jobs import Progress, Scalar, mean_ci95
from sharedsg.harness.resume import resume

# ---------------------------------------------------------------------------------------
# the methods


def make_method(cfg: DictConfig, method: str, ways: int, seed: int):
    """The object a job trains: meta_step(episodes), test_episode(ep), state_dict(), load_state_dict()."""
    if method == "maml":
        from sharedsg.experiments.maml import MamlMethod

        return MamlMethod(cfg, ways, seed)
    if method == "protonet":
        from sharedsg.experiments.protonet import ProtoNetMethod

        return ProtoNetMethod(cfg, ways, seed)
    if method == "mann":
        from sharedsg.learn.mann import MannMethod

        return MannMethod(cfg, ways, seed)
    from sharedsg.learn.fewshot import FewShotNMNMethod

    return FewShotNMNMethod(cfg, ways, seed, fast=method == "proposed")


# ---------------------------------------------------------------------------------------
# episodes

POOL_SALTS = {"train": 0, "test": 1, "val": 2}  # val: held-out characters, a stream apart from the test episodes


class OmniglotEpisodes:
    """Training-character episodes (meta-training) and held-out-character episodes (validation, test).

    Episode ``i`` of a stream depends only on (seed, stream, ways, shots, i), so a resumed job
    sees the same episodes; training episodes use the job's training seed, validation and
    test episodes ``experiment.seed``, so every method and seed is tested on the same episodes.
    """

    def __init__(self, cfg: DictConfig, ways: int, shots: int, train_seed: Optional[int] = None) -> None:
        data = load_omniglot_cached(resolve_root(cfg.data), resolve_cache(cfg.data))
        self.pools = {"train": OmniglotPool(data, "train"), "test": OmniglotPool(data, "test")}
        self.ways, self.shots, self.queries = ways, shots, int(cfg.fewshot.queries)
        self.seed = int(cfg.experiment.seed)
        self.train_seed = self.seed if train_seed is None else int(train_seed)
        self.device = torch.device(cfg.learner.device)  # the job's device: its episodes are made there

    def episode(self, stream: str, index: int, ways: Optional[int] = None, queries: Optional[int] = None) -> Episode:
        """Episode ``index`` of stream 'train', 'val' or 'test' (``ways``, ``queries`` override N and Q,
        for a method's training episodes)."""
        ways = self.ways if ways is None else ways
        queries = self.queries if queries is None else queries
        pool = "train" if stream == "train" else "test"
        seed = self.train_seed if stream == "train" else self.seed
        sampler = EpisodeSampler(self.pools[pool], ways, self.shots, queries,
                                 seed=[seed, POOL_SALTS[stream], ways, self.shots, index])
        return sampler.sample().to(self.device)


# ---------------------------------------------------------------------------------------
# one resumable job = one setting x one method x one training seed


def fewshot_jobs(cfg: DictConfig) -> List[str]:
    """Job names of a config: '<setting>-<method>' (or '<setting>-<method>-s<seed>' per ``fewshot.seeds``)."""
    settings = list(cfg.fewshot.settings) or [f"{cfg.fewshot.ways}w{cfg.fewshot.shots}s"]
    seeds = [f"-s{int(s)}" for s in cfg.fewshot.seeds] or [""]
    return [f"{s}-{m}{seed}" for s in settings for m in cfg.fewshot.methods for seed in seeds]


def parse_job(name: str, default_seed: int) -> Tuple[str, str, int]:
    """'5w1s-maml-s2' -> ('5w1s', 'maml', 2); '5w1s-maml' -> ('5w1s', 'maml', default_seed)."""
    parts = name.split("-")
    seed = default_seed
    if len(parts) == 3 and parts[2].startswith("s") and parts[2][1:].isdigit():
        seed = int(parts[2][1:])
        parts = parts[:2]
    if len(parts) != 2:
        from sharedsg.config import ConfigError

        raise ConfigError(f"config error: job '{name}' is not <setting>-<method>[-s<seed>]")
    return parts[0], parts[1], seed


class FewShotJob:
    def __init__(self, cfg: DictConfig, name: str) -> None:
        fs = cfg.fewshot
        self.setting, self.method, self.seed = parse_job(name, int(cfg.experiment.seed))
        self.cfg, self.name = cfg, name
        self.ways, self.shots = parse_setting(self.setting)
        torch.manual_seed(self.seed)
        self.impl = make_method(cfg, self.method, self.ways, self.seed)
        self.train_ways = int(getattr(self.impl, "train_ways", self.ways))
        self.train_queries = int(getattr(self.impl, "train_queries", fs.queries))
        self.meta_batch = int(fs.meta_batches.get(self.method, fs.meta_batch))
        self.cpu_budget = float(fs.cpu_s.get(self.method, math.inf))
        self.episodes = OmniglotEpisodes(cfg, self.ways, self.shots, train_seed=self.seed)
        self.iteration, self.tested = 0, 0
        self.accuracies: List[float] = []
        self.scalars: List[Scalar] = []
        self.train_s, self.test_s, self.train_cpu_s = 0.0, 0.0, 0.0
        self.train_chars: set = set()  # character ids seen in meta-training (for the tests)

    def train_episodes(self, iteration: int) -> List[Episode]:
        mb = self.meta_batch
        return [self.episodes.episode("train", iteration * mb + j, self.train_ways, self.train_queries)
                for j in range(mb)]

    def state(self) -> Dict[str, object]:
        return {"method": self.impl.state_dict(), "iteration": self.iteration, "tested": self.tested,
                "accuracies": list(self.accuracies), "scalars": [list(s) for s in self.scalars],
                "train_s": self.train_s, "test_s": self.test_s, "train_cpu_s": self.train_cpu_s}

    def load(self, state: Dict[str, object]) -> None:
        self.impl.load_state_dict(state["method"])
        self.iteration, self.tested = int(state["iteration"]), int(state["tested"])
        self.accuracies = [float(a) for a in state["accuracies"]]
        self.scalars = [(str(t), int(s), float(v)) for t, s, v in state["scalars"]]
        self.train_s, self.test_s = float(state["train_s"]), float(state["test_s"])
        self.train_cpu_s = float(state["train_cpu_s"])

    def validate(self) -> float:
        n = int(self.cfg.fewshot.val_episodes)
        return float(np.mean([self.impl.test_episode(self.episodes.episode("val", i)) for i in range(n)]))

    def _training_done(self, cpu: float) -> bool:
        return self.iteration >= int(self.cfg.fewshot.meta_iterations) or self.train_cpu_s + cpu >= self.cpu_budget

    def position(self) -> str:
        return f"iteration {self.iteration}, test episode {self.tested}"

    def run(self, directory: Path, progress: Progress = None) -> Dict[str, object]:
        fs = self.cfg.fewshot
        directory = Path(directory)
        ckpt = resume(self, directory, progress)
        every, val_every = int(fs.checkpoint_every), int(fs.val_every)
        if val_every and self.iteration == 0 and not any(t == "accuracy/val" for t, _, _ in self.scalars):
            self.scalars.append(("accuracy/val", 0, self.validate()))
        t0, c0 = time.perf_counter(), time.process_time()
        while self.tested == 0 and not self._training_done(time.process_time() - c0):
            episodes = self.train_episodes(self.iteration)
            for ep in episodes:
                self.train_chars.update(int(c) for c in ep.char_ids)
            metrics = self.impl.meta_step(episodes)
            self.iteration += 1
            done = self._training_done(time.process_time() - c0)
            if self.iteration % int(fs.log_every) == 0 or done:
                self.scalars += [(k, self.iteration, float(v)) for k, v in metrics.items()]
            if val_every and (self.iteration % val_every == 0 or done):
                self.train_s, self.train_cpu_s = self.train_s + time.perf_counter() - t0, self.train_cpu_s + time.process_time() - c0
                self.scalars.append(("accuracy/val", self.iteration, self.validate()))  # not counted as training time
                t0, c0 = time.perf_counter(), time.process_time()
            if self.iteration % every == 0 or done:
                self.train_s, self.train_cpu_s = self.train_s + time.perf_counter() - t0, self.train_cpu_s + time.process_time() - c0
                t0, c0 = time.perf_counter(), time.process_time()
                checkpoint.save(ckpt, self.state())
                if progress:
                    progress(f"{self.name}: iteration {self.iteration} ({self.train_s:.0f} s, {self.train_cpu_s:.0f} CPU s) "
                             f"query acc {metrics.get('accuracy/query_train', float('nan')):.3f}")
        self.train_s, self.train_cpu_s = self.train_s + time.perf_counter() - t0, self.train_cpu_s + time.process_time() - c0
        t0 = time.perf_counter()
        while self.tested < int(fs.test_episodes):
            self.accuracies.append(self.impl.test_episode(self.episodes.episode("test", self.tested)))
            self.tested += 1
            if self.tested % (4 * every) == 0 or self.tested == int(fs.test_episodes):
                self.test_s += time.perf_counter() - t0
                t0 = time.perf_counter()
                mean, _ = mean_ci95(self.accuracies)
                self.scalars.append(("accuracy/test_running", self.tested, mean))
                checkpoint.save(ckpt, self.state())
                if progress:
                    progress(f"{self.name}: test episode {self.tested}/{fs.test_episodes} accuracy {mean:.4f}")
        self.test_s += time.perf_counter() - t0
        checkpoint.save(ckpt, self.state())
        if val_every:
            from sharedsg.experiments.plots_classification import fewshot_curve

            fewshot_curve(directory / "curve.png", self.name, self.scalars)
        return self.results()

    def results(self) -> Dict[str, object]:
        acc, ci = mean_ci95(self.accuracies)
        fs = self.cfg.fewshot
        out = {"job": self.name, "setting": self.setting, "method": self.method, "seed": self.seed,
               "ways": self.ways, "shots": self.shots, "queries": int(fs.queries), "accuracy": acc, "ci95": ci,
               "test_episodes": len(self.accuracies), "meta_iterations": self.iteration,
               "meta_batch": self.meta_batch, "train_ways": self.train_ways, "train_queries": self.train_queries,
               "train_episodes": self.iteration * self.meta_batch,
               "cpu_budget_s": None if math.isinf(self.cpu_budget) else self.cpu_budget,
               "train_cpu_s": self.train_cpu_s, "train_wall_s": self.train_s, "test_wall_s": self.test_s, "scalars": self.scalars}
        if self.method == "maml":
            out.update(maml_order=self.impl.order, adapt_steps=self.impl.steps, inner_lr=self.impl.lr,
                       test_adapt_steps=self.impl.test_steps)
        return out


def seed_summary(jobs: Dict[str, Dict[str, object]]) -> Dict[str, Dict[str, object]]:
    """Per (setting, method): mean and std over training seeds of the test accuracy, and the seeds' CIs
    (std None with one seed: results.json stays strict JSON, which has no NaN)."""
    groups: Dict[str, List[Dict[str, object]]] = {}
    for res in jobs.values():
        if res.get("test_episodes"):
            groups.setdefault(f"{res['setting']}-{res['method']}", []).append(res)
    out: Dict[str, Dict[str, object]] = {}
    for key, rows in sorted(groups.items()):
        acc = np.array([float(r["accuracy"]) for r in rows])
        out[key] = {"seeds": [int(r["seed"]) for r in rows], "accuracy_mean": float(acc.mean()),
                    "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
                    "ci95": [float(r["ci95"]) for r in rows]}
    return out
