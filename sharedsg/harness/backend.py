"""Where streams run. Experiments drive streams through the :class:`Backend` protocol;
:class:`LocalBackend` runs everything in this process (``--local``, the reference and the
benchmark baseline), ``sharedsg.runtime.RayBackend`` runs the same schedule on Ray actors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Protocol

import torch
from omegaconf import DictConfig

from sharedsg.data.batch import BatchSource
from sharedsg.data.sources import make_source
from sharedsg.learn.sg import SGLearner
from sharedsg.learn.stream import StreamLearner


def group_of(cfg: DictConfig, stream: str) -> str:
    """The sharing group of a stream: its explicit ``group``, else one ``shared`` group or one per stream."""
    explicit = cfg.streams[stream].group if stream in cfg.streams else ""
    if explicit:
        return explicit
    return "shared" if cfg.sg.sharing == "shared" else stream


def stream_seed(cfg: DictConfig, stream: str) -> int:
    """A stream's seed: its explicit ``seed``, else the experiment seed plus its position in the config."""
    names = list(cfg.streams)
    if stream in cfg.streams and cfg.streams[stream].seed >= 0:
        return int(cfg.streams[stream].seed)
    index = names.index(stream) if stream in names else len(names)
    return int(cfg.experiment.seed) * 1000 + index


def batch_size_of(cfg: DictConfig, stream_cfg: DictConfig) -> int:
    return int(stream_cfg.schedule.batch_size or cfg.learner.batch_size)


class Backend(Protocol):
    def add_stream(self, name: str, stream_cfg: DictConfig) -> None: ...

    def train(self, names: List[str], iteration: int) -> Dict[str, Dict[str, float]]:
        """One scheduled step of each named stream (in order); metrics per stream."""

    def evaluate(self, name: str) -> Dict[str, float]: ...

    def predict(self, name: str, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        """Outputs for inputs x (``steps`` output steps), without advancing the stream's state."""

    def sg_versions(self) -> Dict[str, int]: ...

    def close(self) -> None: ...


@dataclass
class LocalStream:
    learner: StreamLearner
    train: BatchSource
    test: BatchSource
    batch_size: int
    group: str


class LocalBackend:
    """Streams and SG groups in one process; the SG copy is always fresh (version lag 0)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.streams: Dict[str, LocalStream] = {}
        self.groups: Dict[str, SGLearner] = {}

    def add_stream(self, name: str, stream_cfg: DictConfig) -> None:
        cfg, seed = self.cfg, stream_seed(self.cfg, name)
        learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=seed, device=cfg.learner.device)
        group = group_of(cfg, name)
        if group not in self.groups:
            self.groups[group] = SGLearner(cfg.model, cfg.sg, seed=cfg.experiment.seed)
        sg = self.groups[group]
        sg.check_dims(learner.dims)
        learner.load_sg(sg.state())
        self.streams[name] = LocalStream(
            learner=learner,
            train=make_source(cfg.data, stream_cfg.data_class, "train", seed),
            test=make_source(cfg.data, stream_cfg.data_class, "test", seed),
            batch_size=batch_size_of(cfg, stream_cfg),
            group=group,
        )

    def train(self, names: List[str], iteration: int) -> Dict[str, Dict[str, float]]:
        out: Dict[str, Dict[str, float]] = {}
        for name in names:
            s = self.streams[name]
            sg = self.groups[s.group]
            if s.learner.sg_version != sg.version:  # another stream of the group moved it on
                s.learner.load_sg(sg.state())
            result = s.learner.step(s.train.next_batch(s.batch_size))
            metrics = dict(result.metrics)
            metrics["sg/version_lag"] = float(sg.version - s.learner.sg_version)
            metrics.update(sg.update([result.targets]))
            s.learner.load_sg(sg.state())
            metrics["sg/version"] = float(sg.version)
            out[name] = metrics
        return out

    def evaluate(self, name: str) -> Dict[str, float]:
        s = self.streams[name]
        return s.learner.evaluate(s.test.eval_batches(s.batch_size, self.cfg.experiment.eval_batches))

    def predict(self, name: str, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        return self.streams[name].learner.predict(x, steps)

    def sg_versions(self) -> Dict[str, int]:
        return {g: sg.version for g, sg in self.groups.items()}

    def close(self) -> None:
        self.streams.clear()
        self.groups.clear()
