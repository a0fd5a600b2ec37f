"""Prototypical network (Snell et al. 2017): the strong, cheap few-shot reference of Table 1.

Not in the paper: a reference a user would pick instead of the NMN. The embedding is
``fewshot.maml_conv_blocks`` (4) blocks of 3x3 conv with 64 filters, batch norm, ReLU and 2x2
max-pool (28x28 -> 64-d, the same network as MAML's body). A class prototype is the mean
embedding of its support images; a query's logits are minus its squared Euclidean distances
to the prototypes. Meta-training: ``fewshot.protonet_train_ways``-way episodes with the
setting's shots (Snell et al. train with more ways than they test), Adam (``meta_lr``) on
the query cross-entropy. Test: the setting's N-way K-shot episodes, batch norm with its
running statistics.
"""

from __future__ import annotations

from typing import Dict, List

import torch
from omegaconf import DictConfig
from torch.nn import functional as F

from sharedsg.data.episodes import Episode
from sharedsg.learn.method import EpisodeMethod
from sharedsg.model.encoders import ConvEncoder


def prototype_logits(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
    """-||f(q) - c_n||^2 with c_n the mean support embedding of class n: (Q, D), (S,), (Q, D) -> (Q, ways)."""
    onehot = F.one_hot(support_y, ways).to(support.dtype)
    prototypes = onehot.t() @ support / onehot.sum(0)[:, None]
    return -torch.cdist(query, prototypes).pow(2)


class ProtoNetMethod(EpisodeMethod):
    """The prototypical network behind the job interface of :mod:`.omniglot`."""

    module_name = "encoder"

    def __init__(self, cfg: DictConfig, ways: int, seed: int) -> None:
        torch.manual_seed(seed)
        fs = cfg.fewshot
        self.encoder = ConvEncoder(cfg.model.conv_channels, fs.maml_conv_blocks,
                                   cfg.model.image_size).to(cfg.learner.device)
        self.train_ways = int(fs.protonet_train_ways)
        self.optimizer = torch.optim.Adam(self.encoder.parameters(), lr=float(fs.meta_lr))

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x[:, None])[:, 0]

    def _logits(self, ep: Episode) -> torch.Tensor:
        ways = int(ep.support_y.max()) + 1
        n = len(ep.support_x)
        feats = self._embed(torch.cat([ep.support_x, ep.query_x]))
        return prototype_logits(feats[:n], ep.support_y, feats[n:], ways)

    def meta_step(self, episodes: List[Episode]) -> Dict[str, float]:
        self.encoder.train()
        loss, acc = 0.0, 0.0
        for ep in episodes:
            logits = self._logits(ep)
            ce = F.cross_entropy(logits, ep.query_y) / len(episodes)
            ce.backward()
            loss += float(ce.detach())
            acc += float((logits.argmax(-1) == ep.query_y).float().mean()) / len(episodes)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss/query_train": loss, "accuracy/query_train": acc}

    def query_logits(self, ep: Episode) -> torch.Tensor:
        self.encoder.eval()
        with torch.no_grad():
            logits = self._logits(ep)
        self.encoder.train()
        return logits
