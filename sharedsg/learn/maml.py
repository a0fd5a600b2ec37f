"""MAML (Finn et al. 2017) with ``torch.func``, for any network and loss: the project's one meta-gradient.

Inner loop: SGD steps of size ``lr`` on the support loss (``torch.func.grad`` of
``functional_call``). Outer loop: the query loss at the adapted weights, differentiated
through the inner loop (``order=2``) or with the inner gradients as constants (``order=1``,
first-order MAML). The Omniglot baseline (:mod:`sharedsg.experiments.maml`) and the
trajectory meta-test (:mod:`sharedsg.experiments.metatest`) both use :func:`meta_gradient`.

``vectorize=True`` runs the tasks of a meta-batch as one ``torch.func.vmap`` (tasks must
have equal shapes); it computes the same meta-gradient as the loop, with one batched
convolution per layer instead of one per task. ``chunk`` tasks at a time (vmap's
``chunk_size``) bound its memory: each chunk's graph is freed before the next is built.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

Params = Dict[str, torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Task = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # support x, support y, query x, query y


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


def _task_meta_gradient(net: nn.Module, params: Params, loss: Loss, sx, sy, qx, qy, steps: int, lr: float,
                        order: int, kw: Optional[Dict[str, Any]]) -> Tuple[Params, Tuple[torch.Tensor, torch.Tensor]]:
    """One task: (d query-loss / d params, (query loss, query outputs))."""

    def outer(p: Params) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        adapted = adapt(net, p, loss, sx, sy, steps, lr, order, kw)
        if order == 1:  # first order: the query gradient at the adapted weights, taken as a function of them
            adapted = {k: p[k] + (v - p[k]).detach() for k, v in adapted.items()}
        out = functional_call(net, adapted, (qx,), kw or {})
        value = loss(out, qy)
        return value, (value.detach(), out.detach())

    return grad(outer, has_aux=True)(params)


def meta_gradient(net: nn.Module, params: Params, loss: Loss, tasks: Sequence[Task], steps: int, lr: float,
                  order: int = 2, kw: Optional[Dict[str, Any]] = None, vectorize: bool = False,
                  chunk: Optional[int] = None) -> Tuple[Params, float, list]:
    """Mean over tasks of d query-loss(adapt(params)) / d params.

    Returns (meta-gradient, mean query loss, the query outputs of every task at its adapted
    weights), all from one pass per task. ``chunk``: tasks per vmap call when vectorised (None: all).
    """
    if vectorize and len(tasks) > 1:
        sx, sy, qx, qy = (torch.stack([t[i] for t in tasks]) for i in range(4))
        fn = lambda a, b, c, d: _task_meta_gradient(net, params, loss, a, b, c, d, steps, lr, order, kw)  # noqa: E731
        g, (losses, outs) = vmap(fn, randomness="same", chunk_size=chunk)(sx, sy, qx, qy)
        return {k: v.mean(0) for k, v in g.items()}, float(losses.mean()), list(outs.unbind(0))
    total: Params = {k: torch.zeros_like(v) for k, v in params.items()}
    mean_loss, outputs = 0.0, []
    for sx, sy, qx, qy in tasks:
        g, (value, out) = _task_meta_gradient(net, params, loss, sx, sy, qx, qy, steps, lr, order, kw)
        for k in total:
            total[k] += g[k] / len(tasks)
        mean_loss += float(value) / len(tasks)
        outputs.append(out)
    return total, mean_loss, outputs
