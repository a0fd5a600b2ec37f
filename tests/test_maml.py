"""MAML with torch.func (learn/maml.py) on the LSTM encoder-decoder (model/seq2seq.py)."""

import math

import torch
from torch.nn import functional as F

from sharedsg.learn.maml import adapt, meta_gradient
from sharedsg.model.seq2seq import Seq2Seq


def test_maml_second_order_differs_from_first_and_adapts():
    torch.manual_seed(0)
    net = Seq2Seq(6)
    params = {k: v.detach().clone() for k, v in net.named_parameters()}
    x, y = torch.randn(4, 5, 2) * 0.1, torch.randn(4, 5, 2) * 0.1
    tasks = [(x[:2], y[:2], x[2:], y[2:])]
    g2, loss = meta_gradient(net, params, F.mse_loss, tasks, 1, 0.5, order=2, kw={"steps": 5})
    g1, _ = meta_gradient(net, params, F.mse_loss, tasks, 1, 0.5, order=1, kw={"steps": 5})
    assert math.isfinite(loss)
    assert any(not torch.allclose(g2[k], g1[k]) for k in g2), "second order must differ from first order"
    adapted = adapt(net, params, F.mse_loss, x, y, 3, 0.02, order=1, kw={"steps": 5})
    before = F.mse_loss(torch.func.functional_call(net, params, (x,), {"steps": 5}), y)
    after = F.mse_loss(torch.func.functional_call(net, adapted, (x,), {"steps": 5}), y)
    assert after < before


def test_seq2seq_shapes():
    net = Seq2Seq(5)
    assert net(torch.randn(3, 7, 2), steps=4).shape == (3, 4, 2)
