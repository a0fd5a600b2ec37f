"""``Stream``: one NMN stream without Ray — its :class:`StreamLearner`, its data, its SG group
and the SG exchange with that group (:meth:`Stream.train`), through an
:class:`~sharedsg.harness.endpoint.SGEndpoint`.

:class:`~sharedsg.harness.backend.LocalBackend` holds its streams in this process with a
:class:`~sharedsg.harness.endpoint.LocalEndpoint` each; ``sharedsg.runtime.hosting.stream.StreamActor``
wraps the very same class in a Ray actor with a ``RayEndpoint`` (RLlib's Learner pattern: one
class, local or remote), and the meta-test runs it on its own batches. So the exchange, its
staleness rule and its order are written once, here.

The facts of a stream that both sides must agree on are decided here, once: its seed
(:func:`stream_seed`), its batch size (:func:`batch_size_of`) and its SG group
(:func:`group_of`, always on the driver; the server is told the group, it never decides it).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from omegaconf import DictConfig

from sharedsg.data.batch import Batch
from sharedsg.data.sources import make_source
from sharedsg.harness.endpoint import ExchangeRule, SGEndpoint
from sharedsg.learn.stream import StreamLearner
from sharedsg.learn.types import SGState


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
    """One stream: the learner, its training and held-out data, its batch size, its SG group and
    (once it has :meth:`join`-ed) the endpoint of that group."""

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
        self.rule = ExchangeRule.of(cfg.sg, cfg.experiment.synchronous)
        self.endpoint: Optional[SGEndpoint] = None

    def join(self, endpoint: SGEndpoint, resumed: bool = False) -> None:
        """Exchange with the SG group through ``endpoint`` from now on, starting from the group's
        weights (a stream ``resumed`` from a checkpoint keeps its copy if it is the group's version)."""
        self.endpoint = endpoint
        if not resumed or self.learner.sg_version != endpoint.version:
            self._load(endpoint.pull(-1))

    def _load(self, state: Optional[SGState]) -> None:
        if state is not None and (state.version > self.learner.sg_version or self.learner.steps == 0):
            self.learner.load_sg(state)

    def train(self, batch: Optional[Batch] = None) -> Dict[str, float]:
        """One training step on ``batch`` (default: the next training batch) and its SG exchange
        (docs/design.md, 'One training step'); the step's metrics.

        :meth:`ExchangeRule.before_step` (``replica``: the copy never lags more than
        ``sg.max_staleness`` versions behind the newest version seen), the step on the copy (Eq. 9-10;
        ``rpc``: with the group's synthetic gradients), :meth:`ExchangeRule.after_step` (send the
        targets; ``experiment.synchronous``: wait until the group has trained on them, so Ray runs
        what ``--local`` does; start fetching once the copy is behind). Without an endpoint (a stream
        with no SG group) only the step.
        """
        batch = batch if batch is not None else self.train_src.next_batch(self.batch_size)
        ep = self.endpoint
        if ep is None:
            return dict(self.learner.step(batch).metrics)
        lag = self.rule.before_step(ep, self.learner)
        result = self.learner.step(batch, ep.predict if self.rule.rpc else None)
        self.rule.after_step(ep, self.learner, result.targets, lag)
        metrics = dict(result.metrics)
        metrics.update(ep.losses)
        metrics["sg/version_lag"] = float(lag)
        metrics["sg/version"] = float(ep.version)
        return metrics

    def evaluate(self) -> Dict[str, float]:
        return self.learner.evaluate(self.test_src.eval_batches(self.batch_size, self.eval_batches))

    def predict(self, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        return self.learner.predict(x, steps)
