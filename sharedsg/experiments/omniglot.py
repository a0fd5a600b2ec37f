"""Omniglot N-way K-shot classification (paper Sec. 4.1, Table 1) and the resumable job machinery.

Episode protocol (``fewshot.*``; docs/classification.md explains the choice):

* Classes: the 1200 Vinyals training characters x 4 rotations for meta-training, the
  423 held-out characters x 4 rotations for testing; all 20 drawings of a character.
  An episode draws N classes and K support + Q query drawings of each, labels remapped
  to 0..N-1 (:class:`~sharedsg.data.episodes.EpisodeSampler`).
* How the samples reach the NMN: the support images are one batch of one-step sequences
  (B = N*K). Per episode the NMN is reset to its meta-trained weights (encoder, controllers,
  learned initial memory content, decoder) and takes ``adapt_steps`` steps of size
  ``nmn_inner_lr`` on the support loss (``nmn_inner_step``: sign of the gradient, i.e. Adam's
  first step, by default; or plain SGD): the controllers with the gradient of ``learner.mixing`` (proposed:
  true + synthetic, ``fewshot.proposed_mixing``; baseline NMN: ``bp_only``), every other
  module with the true gradient. The adapted NMN classifies the query batch.
* The SG predictors of a job (one setting: its own N, so different N never share) are one
  :class:`~sharedsg.learn.sg.SGLearner` used by every episode; during meta-training it learns
  (Eq. 11) from the true-gradient targets of every inner step and of the query step. At test
  time it is frozen.
* Meta-update (``fewshot.meta``): ``fomaml`` (default): the query-loss gradient at the adapted
  weights, averaged over ``meta_batch`` episodes, applied to the meta-weights by Adam
  (``meta_lr``); ``reptile``: the mean of (meta - adapted) as the gradient.
* Score: mean query accuracy over ``test_episodes`` held-out episodes, with the normal 95% CI.

A *job* (one setting x one method) runs meta-training then testing and checkpoints its whole
progress into its directory (atomic writes, ``torch.load(weights_only=True)``), so running it
again resumes; ``sharedsg run`` / ``sharedsg sweep`` run jobs in this process (``--local``) or as Ray actors.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List

import torch
from omegaconf import DictConfig, OmegaConf

from sharedsg import checkpoint
from sharedsg.config import parse_setting
from sharedsg.data.batch import Batch
from sharedsg.data.episodes import Episode, EpisodeSampler
from sharedsg.data.omniglot import OmniglotPool
from sharedsg.data.sources import load_omniglot_cached, resolve_cache, resolve_root
from sharedsg.harness.jobs import Progress, Scalar, mean_ci95
from sharedsg.learn.sg import SGLearner
from sharedsg.learn.stream import StreamLearner

# ---------------------------------------------------------------------------------------
# small statistics shared by the classification jobs


# ---------------------------------------------------------------------------------------
# the NMN methods


def fewshot_model_cfg(cfg: DictConfig, ways: int) -> DictConfig:
    model = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    model.output_dim = ways
    return model


def _images(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> (B, T=1, 1, H, W): single images as one-step sequences."""
    return x[:, None]


class NMNMethod:
    """Proposed (SG + true gradients on the controllers) or baseline (``bp_only``) NMN."""

    def __init__(self, cfg: DictConfig, ways: int, seed: int, mixing: str) -> None:
        fs = cfg.fewshot
        self.model_cfg = fewshot_model_cfg(cfg, ways)
        learner = OmegaConf.merge(cfg.learner, {"mixing": mixing})
        self.learner = StreamLearner(self.model_cfg, learner, cfg.sg, seed=seed)
        self.nmn = self.learner.nmn
        self.uses_sg = mixing != "bp_only"
        self.sg = SGLearner(self.model_cfg, cfg.sg, seed=seed) if self.uses_sg else None
        if self.sg is not None:
            self.learner.load_sg(self.sg.state())
        self.steps, self.lr, self.inner_step = int(fs.adapt_steps), float(fs.nmn_inner_lr), str(fs.nmn_inner_step)
        self.test_steps = int(fs.test_adapt_steps if fs.test_adapt_steps >= 0 else fs.adapt_steps)
        self.meta, self.query_bn = str(fs.meta), str(fs.query_bn)
        self.optimizer = torch.optim.Adam(self.nmn.parameters(), lr=float(fs.meta_lr))

    # -- the inner procedure: the same in meta-training and test -----------------------
    def adapt(self, ep: Episode, steps: int, train_sg: bool) -> Dict[str, float]:
        """``steps`` SGD steps on the support set with the mixed gradient (in place)."""
        batch = Batch(_images(ep.support_x), ep.support_y[:, None])
        sums: Dict[str, float] = {}
        for _ in range(steps):
            mixed, result = self.learner.gradients(batch)
            if train_sg and self.sg is not None:
                self.sg.update([result.targets])
                self.learner.load_sg(self.sg.state())
            with torch.no_grad():
                for n, p in self.nmn.named_parameters():
                    p.sub_(self.lr * (mixed[n].sign() if self.inner_step == "sign" else mixed[n]))
            for k in ("grad_norm/oc/true", "grad_norm/oc/synthetic", "sg/oc/cosine", "loss/train"):
                sums[k] = sums.get(k, 0.0) + result.metrics[k] / max(steps, 1)
        return {k.replace("loss/train", "loss/support"): v for k, v in sums.items()}

    def query_logits(self, ep: Episode) -> torch.Tensor:
        self.nmn.train(self.query_bn == "batch")
        with torch.no_grad():
            logits = self.nmn(_images(ep.query_x), steps=1)[0].y_hat[:, 0]
        self.nmn.train()
        return logits

    def _params(self) -> Dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.nmn.named_parameters()}

    def _restore(self, params: Dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.nmn.named_parameters():
                p.copy_(params[n])

    def meta_step(self, episodes: List[Episode]) -> Dict[str, float]:
        meta = self._params()
        grads = {n: torch.zeros_like(v) for n, v in meta.items()}
        out: Dict[str, float] = {}
        for ep in episodes:
            self._restore(meta)
            inner = self.adapt(ep, self.steps, train_sg=True)
            if self.meta == "fomaml":
                mixing, self.learner.mixing = self.learner.mixing, "bp_only"
                true, result = self.learner.gradients(Batch(_images(ep.query_x), ep.query_y[:, None]))
                self.learner.mixing = mixing
                if self.sg is not None:
                    self.sg.update([result.targets])
                    self.learner.load_sg(self.sg.state())
                for n in grads:
                    grads[n] += true[n] / len(episodes)
                inner["loss/query_train"] = result.metrics["loss/train"]
                inner["accuracy/query_train"] = result.metrics["accuracy/train"]
            else:
                logits = self.query_logits(ep)
                inner["accuracy/query_train"] = float((logits.argmax(-1) == ep.query_y).float().mean())
                with torch.no_grad():
                    for n, p in self.nmn.named_parameters():
                        grads[n] += (meta[n] - p) / len(episodes)
            for k, v in inner.items():
                out[k] = out.get(k, 0.0) + v / len(episodes)
        self._restore(meta)  # BN running statistics keep what the episodes taught them
        for n, p in self.nmn.named_parameters():
            p.grad = grads[n]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return out

    def test_episode(self, ep: Episode) -> float:
        state = {k: v.clone() for k, v in self.nmn.state_dict().items()}
        self.adapt(ep, self.test_steps, train_sg=False)
        acc = float((self.query_logits(ep).argmax(-1) == ep.query_y).float().mean())
        self.nmn.load_state_dict(state)
        return acc

    def state_dict(self) -> Dict[str, object]:
        out: Dict[str, object] = {"nmn": {k: v.detach().clone() for k, v in self.nmn.state_dict().items()},
                                  "optimizer": self.optimizer.state_dict()}
        if self.sg is not None:
            out["sg"] = self.sg.state_dict()
        return out

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.nmn.load_state_dict(state["nmn"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.sg is not None:
            self.sg.load_state_dict(state["sg"])
            self.learner.load_sg(self.sg.state())


def make_method(cfg: DictConfig, method: str, ways: int, seed: int):
    if method == "maml":
        from sharedsg.experiments.maml import MamlMethod

        return MamlMethod(cfg, ways, seed)
    mixing = "bp_only" if method == "baseline" else str(cfg.fewshot.proposed_mixing)
    return NMNMethod(cfg, ways, seed, mixing)


# ---------------------------------------------------------------------------------------
# episodes


class OmniglotEpisodes:
    """Training-character episodes (meta-training) and held-out-character episodes (test).

    Episode ``i`` of a pool depends only on (seed, pool, i), so a resumed job sees the same
    episodes, and every method of a setting is tested on the same held-out episodes.
    """

    def __init__(self, cfg: DictConfig, ways: int, shots: int) -> None:
        data = load_omniglot_cached(resolve_root(cfg.data), resolve_cache(cfg.data))
        self.pools = {"train": OmniglotPool(data, "train"), "test": OmniglotPool(data, "test")}
        self.ways, self.shots, self.queries = ways, shots, int(cfg.fewshot.queries)
        self.seed = int(cfg.experiment.seed)

    def episode(self, pool: str, index: int) -> Episode:
        salt = 0 if pool == "train" else 1
        sampler = EpisodeSampler(self.pools[pool], self.ways, self.shots, self.queries,
                                 seed=[self.seed, salt, self.ways, self.shots, index])
        return sampler.sample()


# ---------------------------------------------------------------------------------------
# one resumable job = one setting x one method


def fewshot_jobs(cfg: DictConfig) -> List[str]:
    """Job names of a config: '<setting>-<method>' for every setting and method."""
    settings = list(cfg.fewshot.settings) or [f"{cfg.fewshot.ways}w{cfg.fewshot.shots}s"]
    return [f"{s}-{m}" for s in settings for m in cfg.fewshot.methods]


class FewShotJob:
    def __init__(self, cfg: DictConfig, name: str) -> None:
        setting, method = name.rsplit("-", 1)
        self.cfg, self.name, self.setting, self.method = cfg, name, setting, method
        self.ways, self.shots = parse_setting(setting)
        torch.manual_seed(int(cfg.experiment.seed))
        self.impl = make_method(cfg, method, self.ways, int(cfg.experiment.seed))
        self.episodes = OmniglotEpisodes(cfg, self.ways, self.shots)
        self.iteration, self.tested = 0, 0
        self.accuracies: List[float] = []
        self.scalars: List[Scalar] = []
        self.train_s, self.test_s = 0.0, 0.0
        self.train_chars: set = set()  # character ids seen in meta-training (for the tests)

    def train_episodes(self, iteration: int) -> List[Episode]:
        mb = int(self.cfg.fewshot.meta_batch)
        return [self.episodes.episode("train", iteration * mb + j) for j in range(mb)]

    def state(self) -> Dict[str, object]:
        return {"method": self.impl.state_dict(), "iteration": self.iteration, "tested": self.tested,
                "accuracies": list(self.accuracies), "scalars": [list(s) for s in self.scalars],
                "train_s": self.train_s, "test_s": self.test_s}

    def load(self, state: Dict[str, object]) -> None:
        self.impl.load_state_dict(state["method"])
        self.iteration, self.tested = int(state["iteration"]), int(state["tested"])
        self.accuracies = [float(a) for a in state["accuracies"]]
        self.scalars = [(str(t), int(s), float(v)) for t, s, v in state["scalars"]]
        self.train_s, self.test_s = float(state["train_s"]), float(state["test_s"])

    def run(self, directory: Path, progress: Progress = None) -> Dict[str, object]:
        fs = self.cfg.fewshot
        ckpt = Path(directory) / "checkpoint.pt"
        state = checkpoint.load(ckpt)
        if state is not None:
            self.load(state)
            if progress:
                progress(f"{self.name}: resumed at iteration {self.iteration}, test episode {self.tested}")
        every = int(fs.checkpoint_every)
        t0 = time.perf_counter()
        while self.iteration < int(fs.meta_iterations):
            episodes = self.train_episodes(self.iteration)
            for ep in episodes:
                self.train_chars.update(int(c) for c in ep.char_ids)
            metrics = self.impl.meta_step(episodes)
            self.iteration += 1
            if self.iteration % int(fs.log_every) == 0 or self.iteration == int(fs.meta_iterations):
                self.scalars += [(k, self.iteration, float(v)) for k, v in metrics.items()]
            if self.iteration % every == 0 or self.iteration == int(fs.meta_iterations):
                self.train_s += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint.save(ckpt, self.state())
                if progress:
                    progress(f"{self.name}: iteration {self.iteration}/{fs.meta_iterations} "
                             f"query acc {metrics.get('accuracy/query_train', float('nan')):.3f}")
        self.train_s += time.perf_counter() - t0
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
        return self.results()

    def results(self) -> Dict[str, object]:
        acc, ci = mean_ci95(self.accuracies)
        fs = self.cfg.fewshot
        out = {"job": self.name, "setting": self.setting, "method": self.method, "ways": self.ways,
               "shots": self.shots, "queries": int(fs.queries), "accuracy": acc, "ci95": ci,
               "test_episodes": len(self.accuracies), "meta_iterations": self.iteration,
               "meta_batch": int(fs.meta_batch), "adapt_steps": int(fs.adapt_steps),
               "train_wall_s": self.train_s, "test_wall_s": self.test_s, "scalars": self.scalars}
        if self.method == "maml":
            out["maml_order"] = self.impl.order
        if self.method == "proposed":
            out["mixing"] = str(fs.proposed_mixing)
        return out
