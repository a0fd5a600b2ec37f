"""model.impl=fast (sharedsg/model/fused.py) gives the reference's numbers: outputs, final state,
losses, true and synthetic parameter gradients, SG targets and metrics, to 1e-5."""

import copy

import pytest
import torch

from sharedsg.data.batch import Batch
from sharedsg.learn.stream import StreamLearner
from sharedsg.model.nmn import NMN

CONFIGS = {
    "trajectory": [],
    "sequence_dot": ["model.encoder_output=sequence", "model.addressing=dot"],
    "persist": ["model.memory_init=random", "model.persist_memory=true", "model.encoder_output=sequence"],
    "fewshot_conv": ["model.encoder=conv", "model.decoder=classification", "model.output_dim=5",
                     "model.conv_channels=8"],
}


def _batch(kind, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "fewshot_conv":  # one image per step, as the Omniglot episodes
        return Batch(torch.rand(5, 1, 1, 28, 28, generator=g), torch.arange(5)[:, None])
    return Batch(torch.randn(4, 7, 2, generator=g) * 0.3, torch.randn(4, 7, 2, generator=g) * 0.3)


def _pair(small_cfg, kind, *more):
    learners = []
    for impl in ("reference", "fast"):
        cfg = small_cfg(*CONFIGS[kind], f"model.impl={impl}", *more)
        learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=3)
        torch.manual_seed(11)  # a non-zero SG, its targets' running RMS (sg.target_scaling=rms) not 1
        for p in learner.sg.parameters():
            p.data.normal_(0, 0.3)
        for pred in learner.sg.predictors.values():
            pred.observe([torch.full((3,), 0.2)])
        learners.append(learner)
    return learners


def _close(a, b, what):
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("kind", list(CONFIGS))
@pytest.mark.parametrize("mixing", ["bp_only", "sg_only", "sum", "lambda"])
@pytest.mark.parametrize("form", ["step", "unroll"])
def test_fast_paths_equal_the_reference(small_cfg, kind, mixing, form):
    ref, fast = _pair(small_cfg, kind, f"learner.mixing={mixing}", f"learner.fast_path={form}", "learner.lam=0.3")
    for step in range(2):  # the second step starts from the first's parameters (and carried state)
        batch = _batch(kind, step)
        (t_r, f_r, r_r), (t_f, f_f, r_f) = ref.paths(batch), fast.paths(batch)
        assert list(t_r) == list(t_f) and set(f_r) == set(f_f)
        for n in t_r:
            _close(t_f[n], t_r[n], f"true {n}")
        for n in f_r:
            _close(f_f[n], f_r[n], f"synthetic {n}")
        for part in ("h", "g"):
            for c in r_r.targets.h:
                _close(getattr(r_f.targets, part)[c], getattr(r_r.targets, part)[c], f"target {part} {c}")
        assert list(r_r.metrics) == list(r_f.metrics)
        for k, v in r_r.metrics.items():
            assert r_f.metrics[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
        ref.step(batch)
        fast.step(batch)
        for (n, p), q in zip(ref.nmn.named_parameters(), fast.nmn.parameters()):
            # Adam moves a parameter by ~lr whatever its gradient's size: where the true gradient is
            # rounding noise (a conv bias before batch norm: exactly 0 in exact arithmetic) the two
            # implementations' noise differs, so only parameters with a real gradient are compared
            real = t_r[n].abs() > 1e-6
            _close(q[real], p[real], f"parameter {n} after step {step}")
        if ref.persist:
            for k, v in ref.carried.tensors().items():
                _close(fast.carried.tensors()[k], v, f"carried {k}")


@pytest.mark.parametrize("kind", ["trajectory", "persist"])
def test_fast_nmn_forward_and_backward_equal_the_reference(small_cfg, kind):
    """Through NMN.forward (one autograd node): outputs, final state and the gradients of every
    parameter and of the state it started from."""
    ref = NMN(small_cfg(*CONFIGS[kind], "model.impl=reference").model, seed=0)
    fast = copy.deepcopy(ref)
    fast.impl = "fast"
    chi = torch.randn(3, 7, 2)
    results = []
    for nmn in (ref, fast):
        start = nmn.initial_state(1)
        start.memory = start.memory.detach().clone().requires_grad_(True)
        start.h = {c: torch.randn(1, 8, generator=torch.Generator().manual_seed(i)).requires_grad_(True)
                   for i, c in enumerate(start.h)}
        out, final = nmn(chi, start)
        loss = ((out.y_hat ** 2).sum() + (out.h["ic"] * 0.3).sum() + (out.z * torch.arange(4.0)).sum()
                + (final.memory ** 2).sum() + final.c["oc"].sum() + final.h["wc"].sum())
        loss.backward()
        grads = {n: p.grad for n, p in nmn.named_parameters()}
        grads.update({"start.memory": start.memory.grad, **{f"start.h.{c}": v.grad for c, v in start.h.items()}})
        results.append((out, final, grads))
    (o_r, s_r, g_r), (o_f, s_f, g_f) = results
    _close(o_f.y_hat, o_r.y_hat, "y_hat")
    _close(o_f.z, o_r.z, "z")
    for k, v in s_r.tensors().items():
        _close(s_f.tensors()[k], v, f"final {k}")
    assert [n for n, g in g_r.items() if g is None] == (["memory.init"] if ref.memory.learned else [])  # M_0 unused
    for n, g in g_r.items():
        if g is not None:
            _close(g_f[n], g, f"grad {n}")
