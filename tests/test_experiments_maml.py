"""MAML with torch.func (the Table 1 baseline): second-order and first-order meta-gradients."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sharedsg.config import load_config
from sharedsg.data.episodes import Episode
from sharedsg.experiments.maml import MamlMethod, MamlNet, adapt, meta_gradient

TINY = ["model.encoder=conv", "model.decoder=classification", "model.conv_channels=4", "model.conv_blocks=2",
        "fewshot.adapt_steps=2", "fewshot.inner_lr=0.3"]


def _episode(seed: int, ways: int = 3, shots: int = 2, queries: int = 2) -> Episode:
    g = torch.Generator().manual_seed(seed)
    sy = torch.arange(ways).repeat_interleave(shots)
    qy = torch.arange(ways).repeat_interleave(queries)
    proto = torch.rand(ways, 1, 28, 28, generator=g)
    sx = proto[sy] + 0.1 * torch.randn(len(sy), 1, 28, 28, generator=g)
    qx = proto[qy] + 0.1 * torch.randn(len(qy), 1, 28, 28, generator=g)
    return Episode(sx, sy, qx, qy, torch.arange(ways), torch.zeros(ways, dtype=torch.long))


def _reference(net, params, ep, steps, lr, second_order):
    """The meta-gradient with plain torch.autograd (create_graph for second order)."""
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    fast = dict(p)
    for _ in range(steps):
        loss = F.cross_entropy(torch.func.functional_call(net, fast, (ep.support_x,)), ep.support_y)
        gs = torch.autograd.grad(loss, list(fast.values()), create_graph=second_order)
        fast = {k: v - lr * g for (k, v), g in zip(fast.items(), gs)}
    q = F.cross_entropy(torch.func.functional_call(net, fast, (ep.query_x,)), ep.query_y)
    return dict(zip(p, torch.autograd.grad(q, list(p.values()))))


@pytest.mark.parametrize("order", [1, 2])
def test_meta_gradient_matches_autograd(order):
    cfg = load_config(None, TINY)
    net = MamlNet(cfg.model, ways=3, seed=1)
    params = {k: v.detach() for k, v in net.named_parameters()}
    ep = _episode(0)
    got, loss, acc = meta_gradient(net, params, [ep], steps=2, lr=0.3, order=order)
    want = _reference(net, params, ep, 2, 0.3, second_order=order == 2)
    for k in params:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-6)
    assert loss > 0 and 0 <= acc <= 1


def test_second_and_first_order_differ():
    cfg = load_config(None, TINY)
    net = MamlNet(cfg.model, ways=3, seed=1)
    params = {k: v.detach() for k, v in net.named_parameters()}
    ep = _episode(1)
    g2, _, _ = meta_gradient(net, params, [ep], 2, 0.3, order=2)
    g1, _, _ = meta_gradient(net, params, [ep], 2, 0.3, order=1)
    diff = sum(float((g2[k] - g1[k]).abs().sum()) for k in params)
    assert diff > 1e-6


def test_adaptation_lowers_support_loss_and_meta_training_helps():
    torch.set_num_threads(1)
    cfg = load_config(None, TINY + ["fewshot.meta_lr=0.01"])
    m = MamlMethod(cfg, ways=3, seed=0)
    assert m.order == 2 and MamlMethod(load_config(None, TINY), ways=20, seed=0).order == 1
    ep = _episode(2)
    params = {k: v.detach() for k, v in m.net.named_parameters()}
    before = F.cross_entropy(torch.func.functional_call(m.net, params, (ep.support_x,)), ep.support_y)
    after_p = adapt(m.net, params, ep.support_x, ep.support_y, 3, 0.3, order=1)
    after = F.cross_entropy(torch.func.functional_call(m.net, after_p, (ep.support_x,)), ep.support_y)
    assert float(after) < float(before)
    losses = [m.meta_step([_episode(10 + i % 3)])["loss/query_train"] for i in range(12)]
    assert sum(losses[-3:]) < sum(losses[:3])
    assert 0.0 <= m.test_episode(_episode(99)) <= 1.0
