"""MAML with torch.func (learn/maml.py): the project's one meta-gradient, checked against plain autograd."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sharedsg.learn.maml import adapt, meta_gradient
from sharedsg.model.seq2seq import Seq2Seq


def _reference(net, params, task, steps, lr, second_order, loss=F.mse_loss, kw=None):
    """The meta-gradient with torch.autograd (create_graph for second order)."""
    sx, sy, qx, qy = task
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    fast = dict(p)
    for _ in range(steps):
        value = loss(torch.func.functional_call(net, fast, (sx,), kw or {}), sy)
        gs = torch.autograd.grad(value, list(fast.values()), create_graph=second_order)
        fast = {k: v - lr * g for (k, v), g in zip(fast.items(), gs)}
    q = loss(torch.func.functional_call(net, fast, (qx,), kw or {}), qy)
    return dict(zip(p, torch.autograd.grad(q, list(p.values())))), float(q)


@pytest.mark.parametrize("order", [1, 2])
def test_meta_gradient_matches_autograd_on_the_seq2seq(order):
    torch.manual_seed(0)
    net = Seq2Seq(6)
    params = {k: v.detach().clone() for k, v in net.named_parameters()}
    x, y = torch.randn(4, 5, 2) * 0.1, torch.randn(4, 5, 2) * 0.1
    task = (x[:2], y[:2], x[2:], y[2:])
    got, loss, outs = meta_gradient(net, params, F.mse_loss, [task], 2, 0.5, order=order, kw={"steps": 5})
    want, want_loss = _reference(net, params, task, 2, 0.5, order == 2, kw={"steps": 5})
    for k in params:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-7)
    assert loss == pytest.approx(want_loss, rel=1e-5) and outs[0].shape == (2, 5, 2)


def test_second_order_differs_from_first_and_adaptation_lowers_the_loss():
    torch.manual_seed(0)
    net = Seq2Seq(6)
    params = {k: v.detach().clone() for k, v in net.named_parameters()}
    x, y = torch.randn(4, 5, 2) * 0.1, torch.randn(4, 5, 2) * 0.1
    tasks = [(x[:2], y[:2], x[2:], y[2:])]
    g2, loss, _ = meta_gradient(net, params, F.mse_loss, tasks, 1, 0.5, order=2, kw={"steps": 5})
    g1, _, _ = meta_gradient(net, params, F.mse_loss, tasks, 1, 0.5, order=1, kw={"steps": 5})
    assert math.isfinite(loss)
    assert any(not torch.allclose(g2[k], g1[k]) for k in g2), "second order must differ from first order"
    adapted = adapt(net, params, F.mse_loss, x, y, 3, 0.02, order=1, kw={"steps": 5})
    before = F.mse_loss(torch.func.functional_call(net, params, (x,), {"steps": 5}), y)
    after = F.mse_loss(torch.func.functional_call(net, adapted, (x,), {"steps": 5}), y)
    assert after < before


@pytest.mark.parametrize("chunk", [None, 1, 2])
@pytest.mark.parametrize("order", [1, 2])
def test_vectorized_meta_batch_equals_the_loop(order, chunk):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    params = {k: v.detach().clone() for k, v in net.named_parameters()}
    tasks = [(torch.randn(4, 3), torch.randint(0, 2, (4,)), torch.randn(6, 3), torch.randint(0, 2, (6,)))
             for _ in range(3)]
    loop, l1, o1 = meta_gradient(net, params, F.cross_entropy, tasks, 2, 0.3, order)
    vec, l2, o2 = meta_gradient(net, params, F.cross_entropy, tasks, 2, 0.3, order, vectorize=True, chunk=chunk)
    for k in params:
        torch.testing.assert_close(vec[k], loop[k], rtol=1e-5, atol=1e-7)
    assert l1 == pytest.approx(l2, rel=1e-6)
    for a, b in zip(o1, o2):
        torch.testing.assert_close(a, b)


def test_seq2seq_shapes():
    net = Seq2Seq(5)
    assert net(torch.randn(3, 7, 2), steps=4).shape == (3, 4, 2)
