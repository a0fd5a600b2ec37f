"""MAML (Finn et al. 2017) for the Omniglot baseline of Table 1, written with ``torch.func``.

The network is the NMN's conv encoder f^E (Sec. 4.1: 3 blocks of 3x3 conv with 64 filters,
batch norm, ReLU, 2x2 max-pool) followed by a dense N-way layer. As in MAML, batch norm
always normalises with the statistics of the batch it sees (no running statistics).

Inner loop: ``adapt_steps`` SGD steps of size ``inner_lr`` on the support loss,
``torch.func.grad`` of ``torch.func.functional_call``. Outer loop: the query loss at the
adapted weights, differentiated through the inner loop (``order=2``) or with the inner
gradients treated as constants (``order=1``, first-order MAML); Adam on the meta-weights.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from omegaconf import DictConfig
from torch import nn
from torch.func import functional_call, grad
from torch.nn import functional as F

from sharedsg.data.episodes import Episode
from sharedsg.learn.maml import adapt as maml_adapt
from sharedsg.model.encoders import ConvEncoder

Params = Dict[str, torch.Tensor]


class MamlNet(nn.Module):
    """Conv encoder (the NMN's f^E) + dense classifier; batch norm without running statistics."""

    def __init__(self, model: DictConfig, ways: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = ConvEncoder(model.conv_channels, model.conv_blocks, model.image_size)
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


def adapt(net: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
          order: int = 2) -> Params:
    """``steps`` SGD steps on the support cross-entropy; differentiable through them when ``order == 2``."""
    return maml_adapt(net, params, F.cross_entropy, x, y, steps, lr, order)


def meta_gradient(net: nn.Module, params: Params, episodes: List[Episode], steps: int, lr: float,
                  order: int) -> Tuple[Params, float, float]:
    """Mean over episodes of d query_loss(adapt(params)) / d params; also the mean query loss and accuracy."""

    def query_loss(p: Params, ep: Episode) -> Tuple[torch.Tensor, torch.Tensor]:
        adapted = adapt(net, p, ep.support_x, ep.support_y, steps, lr, order)
        logits = functional_call(net, adapted, (ep.query_x,))
        loss = F.cross_entropy(logits, ep.query_y)
        return loss, (loss.detach(), logits.detach())

    total: Params = {k: torch.zeros_like(v) for k, v in params.items()}
    losses, accs = 0.0, 0.0
    for ep in episodes:
        g, (loss, logits) = grad(query_loss, has_aux=True)(params, ep)
        for k in total:
            total[k] += g[k] / len(episodes)
        losses += float(loss) / len(episodes)
        accs += float((logits.argmax(-1) == ep.query_y).float().mean()) / len(episodes)
    return total, losses, accs


class MamlMethod:
    """The MAML baseline behind the same job interface as the NMN methods (:mod:`.omniglot`)."""

    uses_sg = False

    def __init__(self, cfg: DictConfig, ways: int, seed: int) -> None:
        fs = cfg.fewshot
        self.net = MamlNet(cfg.model, ways, seed)
        self.order = int(fs.maml_order_20way if ways >= 20 else fs.maml_order)
        self.steps, self.lr = int(fs.adapt_steps), float(fs.inner_lr)
        self.test_steps = int(fs.test_adapt_steps if fs.test_adapt_steps >= 0 else fs.adapt_steps)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=float(fs.meta_lr))

    def _params(self) -> Params:
        return {k: v.detach() for k, v in self.net.named_parameters()}

    def meta_step(self, episodes: List[Episode]) -> Dict[str, float]:
        g, loss, acc = meta_gradient(self.net, self._params(), episodes, self.steps, self.lr, self.order)
        for k, p in self.net.named_parameters():
            p.grad = g[k]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss/query_train": loss, "accuracy/query_train": acc}

    def test_episode(self, ep: Episode) -> float:
        adapted = adapt(self.net, self._params(), ep.support_x, ep.support_y, self.test_steps, self.lr, order=1)
        with torch.no_grad():
            logits = functional_call(self.net, adapted, (ep.query_x,))
        return float((logits.argmax(-1) == ep.query_y).float().mean())

    def state_dict(self) -> Dict[str, object]:
        return {"net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
