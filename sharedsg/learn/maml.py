"""MAML (Finn et al. 2017) with ``torch.func``, for any network and loss.

Inner loop: SGD steps of size ``lr`` on the support loss (``torch.func.grad`` of
``functional_call``). Outer loop: the query loss at the adapted weights, differentiated
through the inner loop (``order=2``) or with the inner gradients as constants (``order=1``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.func import functional_call, grad

Params = Dict[str, torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def task_loss(net: nn.Module, params: Params, loss: Loss, x: torch.Tensor, y: torch.Tensor,
              kw: Optional[Dict[str, Any]] = None) -> torch.Tensor:
    """loss(net(x; params, **kw), y)."""
    return loss(functional_call(net, params, (x,), kw or {}), y)


def adapt(net: nn.Module, params: Params, loss: Loss, x: torch.Tensor, y: torch.Tensor, steps: int,
          lr: float, order: int = 2, kw: Optional[Dict[str, Any]] = None) -> Params:
    """``steps`` SGD steps on (x, y); differentiable through the steps when ``order == 2``."""
    inner = grad(lambda p: task_loss(net, p, loss, x, y, kw))
    for _ in range(steps):
        g = inner(params)
        if order == 1:
            g = {k: v.detach() for k, v in g.items()}
        params = {k: params[k] - lr * g[k] for k in params}
    return params


def meta_gradient(net: nn.Module, params: Params, loss: Loss,
                  tasks: Sequence[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
                  steps: int, lr: float, order: int = 2, kw: Optional[Dict[str, Any]] = None
                  ) -> Tuple[Params, float]:
    """Mean over tasks (support x, support y, query x, query y) of d query-loss / d params."""

    def outer(p: Params, sx, sy, qx, qy) -> torch.Tensor:
        return task_loss(net, adapt(net, p, loss, sx, sy, steps, lr, order, kw), loss, qx, qy, kw)

    total: Params = {k: torch.zeros_like(v) for k, v in params.items()}
    losses = 0.0
    for sx, sy, qx, qy in tasks:
        if order == 2:
            g = grad(outer)(params, sx, sy, qx, qy)
        else:  # first order: the query gradient at the adapted weights
            adapted = {k: v.detach() for k, v in adapt(net, params, loss, sx, sy, steps, lr, 1, kw).items()}
            g = grad(lambda p: task_loss(net, p, loss, qx, qy, kw))(adapted)
        for k in total:
            total[k] += g[k] / len(tasks)
        with torch.no_grad():
            losses += float(outer(params, sx, sy, qx, qy)) / len(tasks)
    return total, losses
