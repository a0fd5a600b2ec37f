"""The Omniglot MAML baseline as Finn et al. ran it: 4-block conv to a 64-d feature, torch.func meta-gradient."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sharedsg.config import load_config
from sharedsg.data.episodes import Episode
from sharedsg.experiments.maml import MamlMethod, MamlNet
from sharedsg.learn.maml import adapt, meta_gradient

TINY = ["model.encoder=conv", "model.decoder=classification", "model.conv_channels=4",
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


def test_finn_network_gives_a_64d_feature_on_28x28():
    net = MamlNet(64, 4, 28, ways=5)
    assert net.encoder.out_dim == 64 and net.head.in_features == 64
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 5)


@pytest.mark.parametrize("order", [1, 2])
def test_meta_gradient_of_a_vectorised_meta_batch_matches_autograd(order):
    net = MamlNet(4, 4, 28, ways=3, seed=1).double()  # float64: second order through batch norm, compared tightly
    params = {k: v.detach() for k, v in net.named_parameters()}
    eps = [_episode(0), _episode(1)]
    for e in eps:
        e.support_x, e.query_x = e.support_x.double(), e.query_x.double()
    tasks = [(e.support_x, e.support_y, e.query_x, e.query_y) for e in eps]
    got, loss, logits = meta_gradient(net, params, F.cross_entropy, tasks, 2, 0.3, order, vectorize=True)
    refs = [_reference(net, params, e, 2, 0.3, second_order=order == 2) for e in eps]
    for k in params:
        torch.testing.assert_close(got[k], (refs[0][k] + refs[1][k]) / 2, rtol=1e-8, atol=1e-10)
    assert loss > 0 and logits[0].shape == (6, 3)


def test_adaptation_lowers_support_loss_and_meta_training_helps():
    torch.set_num_threads(1)
    cfg = load_config(None, TINY + ["fewshot.meta_lr=0.01"])
    m = MamlMethod(cfg, ways=3, seed=0)
    assert m.order == 2 and MamlMethod(load_config(None, TINY), ways=20, seed=0).order == 1
    ep = _episode(2)
    params = {k: v.detach() for k, v in m.net.named_parameters()}
    before = F.cross_entropy(torch.func.functional_call(m.net, params, (ep.support_x,)), ep.support_y)
    after_p = adapt(m.net, params, F.cross_entropy, ep.support_x, ep.support_y, 3, 0.3, order=1)
    after = F.cross_entropy(torch.func.functional_call(m.net, after_p, (ep.support_x,)), ep.support_y)
    assert float(after) < float(before)
    losses = [m.meta_step([_episode(10 + i % 3), _episode(20 + i % 3)])["loss/query_train"] for i in range(12)]
    assert sum(losses[-3:]) < sum(losses[:3])
    assert 0.0 <= m.test_episode(_episode(99)) <= 1.0


def test_vmap_chunk_gives_the_same_meta_step():
    """fewshot.maml_vmap_chunk bounds the memory of a meta-step (episodes differentiated at once), not its result."""
    torch.set_num_threads(1)
    eps = [_episode(30 + i) for i in range(3)]
    nets = []
    for chunk in (0, 1):
        m = MamlMethod(load_config(None, TINY + [f"fewshot.maml_vmap_chunk={chunk}"]), ways=3, seed=0)
        assert m.chunk == (chunk or None)
        m.optimizer = torch.optim.SGD(m.net.parameters(), lr=1.0)  # the step is the meta-gradient (Adam's sign-like first step would hide it)
        m.meta_step(eps)
        nets.append(dict(m.net.named_parameters()))
    for k, v in nets[0].items():
        torch.testing.assert_close(nets[1][k], v, rtol=1e-5, atol=1e-6)
