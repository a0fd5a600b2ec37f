"""Where streams run. Experiments drive streams through the :class:`Backend` protocol;
:class:`LocalBackend` runs everything in this process (``--local``, the reference and the
benchmark baseline), ``sharedsg.runtime.hosting.backend.RayBackend`` runs the same schedule on Ray
actors. Both hold the same :class:`~sharedsg.harness.stream.Stream` objects.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Protocol

import torch
from omegaconf import DictConfig, OmegaConf

from sharedsg.harness.endpoint import LocalEndpoint
from sharedsg.harness.runlog import RunLog
from sharedsg.harness.stream import Stream
from sharedsg.learn.sg import SGLearner


class Backend(Protocol):
    def add_streams(self, streams: Mapping[str, DictConfig]) -> None:
        """Start these streams (name -> stream config), all together; a stream the run's config does
        not list joins it (attach)."""

    def train(self, names: List[str], iteration: int) -> Dict[str, Dict[str, float]]:
        """One scheduled step of each named stream (in order); metrics per stream."""

    def evaluate(self, name: str) -> Dict[str, float]: ...

    def predict(self, name: str, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        """Outputs for inputs x (``steps`` output steps), without advancing the stream's state."""

    def groups_of(self) -> Dict[str, str]:
        """stream -> its SG group."""

    def sg_versions(self) -> Dict[str, int]:
        """SG group -> its version, once it has trained on every push made so far."""

    def reset(self, cfg: DictConfig, log: RunLog) -> None:
        """End this run and start ``cfg``'s (another seed of the experiment: the same streams and SG
        groups), logging to ``log``, with what can be reused (Ray: the actors); it runs as on a
        new backend of ``cfg``. Its streams are added with :meth:`add_streams`, as on a new backend."""

    def close(self) -> None: ...


class LocalBackend:
    """Streams and SG groups in one process: each stream exchanges with its group through a
    :class:`~sharedsg.harness.endpoint.LocalEndpoint` (:meth:`Stream.train`: the staleness rule and
    order of a Ray run; a push is trained on as it is sent)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.streams: Dict[str, Stream] = {}
        self.groups: Dict[str, SGLearner] = {}

    def add_streams(self, streams: Mapping[str, DictConfig]) -> None:
        for name, stream_cfg in streams.items():
            if name not in self.cfg.streams:  # attach-style: a stream the config did not list
                self.cfg = OmegaConf.merge(self.cfg, {"streams": {name: stream_cfg}})
            stream = Stream(self.cfg, name)
            if stream.group not in self.groups:
                self.groups[stream.group] = SGLearner(self.cfg.model, self.cfg.sg, seed=self.cfg.experiment.seed)
            sg = self.groups[stream.group]
            sg.check_dims(stream.learner.dims)
            stream.join(LocalEndpoint(sg))
            self.streams[name] = stream

    def train(self, names: List[str], iteration: int) -> Dict[str, Dict[str, float]]:
        return {name: self.streams[name].train() for name in names}

    def evaluate(self, name: str) -> Dict[str, float]:
        return self.streams[name].evaluate()

    def predict(self, name: str, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        return self.streams[name].predict(x, steps)

    def groups_of(self) -> Dict[str, str]:
        return {n: s.group for n, s in self.streams.items()}

    def sg_versions(self) -> Dict[str, int]:
        return {g: sg.version for g, sg in self.groups.items()}

    def reset(self, cfg: DictConfig, log: RunLog) -> None:
        """In one process there is nothing to reuse: a new start with ``cfg``."""
        self.close()
        self.cfg = cfg

    def close(self) -> None:
        self.streams.clear()
        self.groups.clear()
