"""``Stream``: one NMN stream without Ray — its :class:`StreamLearner`, its data and its SG group.

:class:`~sharedsg.harness.backend.LocalBackend` holds its streams in this process;
``sharedsg.runtime.stream.StreamActor`` wraps the very same class in a Ray actor and adds the
SG exchange with the server (RLlib's Learner pattern: one class, local or remote).

The facts of a stream that both sides must agree on are decided here, once: its seed
(:func:`stream_seed`), its batch size (:func:`batch_size_of`) and its SG group
(:func:`group_of`, always on the driver; the server is told the group, it never decides it).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from omegaconf import DictConfig

from sharedsg.data.sources import make_source
from sharedsg.learn.stream import Predictor, StreamLearner
from sharedsg.learn.types import StepResult


def sharing_group(sharing: str, stream: str) -> str:
    """The SG group a stream joins under ``sg.sharing``: the one ``shared`` group, or its own."""
    return "shared" if sharing == "shared" else stream


def group_of(cfg: DictConfig, stream: str) -> str:
    """The SG group of a stream: its explicit ``streams.<name>.group``, else by ``sg.sharing``."""
    explicit = cfg.streams[stream].group if stream in cfg.streams else ""
    return explicit or sharing_group(cfg.sg.sharing, stream)


def stream_seed(cfg: DictConfig, stream: str) -> int:
    """A stream's seed: its explicit ``seed``, else the experiment seed plus its position in the config."""
    names = list(cfg.streams)
    if stream in cfg.streams and cfg.streams[stream].seed >= 0:
        return int(cfg.streams[stream].seed)
    index = names.index(stream) if stream in names else len(names)
    return int(cfg.experiment.seed) * 1000 + index


def batch_size_of(cfg: DictConfig, stream_cfg: DictConfig) -> int:
    return int(stream_cfg.schedule.batch_size or cfg.learner.batch_size)


class Stream:
    """One stream: the learner, its training and held-out data, its batch size and SG group."""

    def __init__(self, cfg: DictConfig, name: str, device: Optional[str | torch.device] = None) -> None:
        stream_cfg = cfg.streams[name]
        self.name = name
        self.seed = stream_seed(cfg, name)
        self.group = group_of(cfg, name)
        self.data_class = str(stream_cfg.data_class)
        self.batch_size = batch_size_of(cfg, stream_cfg)
        self.eval_batches = int(cfg.experiment.eval_batches)
        self.learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=self.seed,
                                     device=device if device is not None else cfg.learner.device)
        self.train_src = make_source(cfg.data, self.data_class, "train", self.seed)
        self.test_src = make_source(cfg.data, self.data_class, "test", self.seed)

    def step(self, predict: Optional[Predictor] = None) -> StepResult:
        """One training step on the next batch (synthetic gradients from ``predict``, else the local SG copy)."""
        return self.learner.step(self.train_src.next_batch(self.batch_size), predict)

    def evaluate(self) -> Dict[str, float]:
        return self.learner.evaluate(self.test_src.eval_batches(self.batch_size, self.eval_batches))

    def predict(self, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        return self.learner.predict(x, steps)
