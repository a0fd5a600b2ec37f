"""MAML (Finn et al. 2017) as its authors ran it on Omniglot, for Table 1's baseline row.

The network is Finn et al.'s: ``fewshot.maml_conv_blocks`` (4) blocks of 3x3 conv with 64
filters, batch norm, ReLU and 2x2 max-pool, which take a 28x28 image to a 64-d feature,
then a dense N-way layer. As in MAML, batch norm always normalises with the statistics of
the batch it sees (no running statistics).

Inner loop: ``adapt_steps`` SGD steps of size ``inner_lr`` on the support loss (the
authors: 1 step of 0.4 for 5-way, 5 steps of 0.1 for 20-way; the setting configs set
them). Outer loop: :func:`sharedsg.learn.maml.meta_gradient` (the project's one MAML
meta-gradient; second order, or first order with ``maml_order``), the episodes of a
meta-batch as one ``vmap`` (``maml_vmap_chunk`` episodes at a time); Adam on the meta-weights. Meta-training episodes have
``maml_train_queries`` queries per class (Finn et al.: 1). Test: ``test_adapt_steps`` steps.
"""

from __future__ import annotations

from typing import Dict, List

import torch
from omegaconf import DictConfig
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from sharedsg.data.episodes import Episode
from sharedsg.learn.maml import Params, adapt, meta_gradient
from sharedsg.learn.method import EpisodeMethod
from sharedsg.model.encoders import ConvEncoder


class MamlNet(nn.Module):
    """Conv encoder + dense classifier; batch norm without running statistics."""

    def __init__(self, channels: int, blocks: int, image_size: int, ways: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = ConvEncoder(channels, blocks, image_size)
        for m in self.encoder.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.track_running_stats = False
                m.running_mean = None
                m.running_var = None
                m.num_batches_tracked = None
        self.head = nn.Linear(self.encoder.out_dim, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, H, W) -> logits (B, ways)."""
        return self.head(self.encoder(x[:, None])[:, 0])


class MamlMethod(EpisodeMethod):
    """The MAML baseline behind the job interface of :mod:`.omniglot` (meta_step, test_episode, state)."""

    module_name = "net"

    def __init__(self, cfg: DictConfig, ways: int, seed: int) -> None:
        fs = cfg.fewshot
        self.net = MamlNet(cfg.model.conv_channels, fs.maml_conv_blocks, cfg.model.image_size, ways,
                           seed).to(cfg.learner.device)
        self.order = int(fs.maml_order_20way if ways >= 20 else fs.maml_order)
        self.steps, self.lr = int(fs.adapt_steps), float(fs.inner_lr)
        self.train_queries = int(fs.maml_train_queries)
        self.chunk = int(fs.maml_vmap_chunk) or None
        self.test_steps = int(fs.test_adapt_steps if fs.test_adapt_steps >= 0 else fs.adapt_steps)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=float(fs.meta_lr))

    def _params(self) -> Params:
        return {k: v.detach() for k, v in self.net.named_parameters()}

    def meta_step(self, episodes: List[Episode]) -> Dict[str, float]:
        tasks = [(ep.support_x, ep.support_y, ep.query_x, ep.query_y) for ep in episodes]
        g, loss, logits = meta_gradient(self.net, self._params(), F.cross_entropy, tasks, self.steps, self.lr,
                                        self.order, vectorize=True, chunk=self.chunk)
        acc = sum(float((lg.argmax(-1) == ep.query_y).float().mean()) for lg, ep in zip(logits, episodes))
        for k, p in self.net.named_parameters():
            p.grad = g[k]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss/query_train": loss, "accuracy/query_train": acc / len(episodes)}

    def query_logits(self, ep: Episode) -> torch.Tensor:
        adapted = adapt(self.net, self._params(), F.cross_entropy, ep.support_x, ep.support_y, self.test_steps,
                        self.lr, order=1)
        with torch.no_grad():
            return functional_call(self.net, adapted, (ep.query_x,))
