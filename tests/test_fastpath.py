"""Eq. 10's fast path (learner.fast_path): with an oracle SG (s = the true per-sample dL/dh) the
step form is the true controller gradient; the unroll form counts the recurrent path twice."""

import pytest
import torch

from sharedsg.data.batch import Batch
from sharedsg.learn.stream import StreamLearner

CONTROLLERS = ("ic", "oc", "wc")


def _oracle_paths(small_cfg, impl, form, t_len=10):
    cfg = small_cfg("learner.mixing=sg_only", f"learner.fast_path={form}", f"model.impl={impl}",
                    "model.encoder_output=sequence")
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=3)
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(4, t_len, 2, generator=g) * 0.3, torch.randn(4, t_len, 2, generator=g) * 0.3)
    true, _, result = learner.paths(batch)
    targets = result.targets.g  # the true per-sample dL/dh_c,t
    _, fast, _ = learner.paths(batch, predict=lambda h, y: targets)
    return learner, batch, true, fast


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_oracle_sg_step_form_is_the_true_gradient(small_cfg, impl):
    """sum_t g_t . dh_t/dtheta (h_{t-1} fixed, the cell state chained) = dL/dtheta when g_t is the total dL/dh_t."""
    _, _, true, fast = _oracle_paths(small_cfg, impl, "step")
    assert set(fast) == {n for n in true if n.startswith(CONTROLLERS)}
    for n, f in fast.items():
        assert true[n].abs().max() > 0
        torch.testing.assert_close(f, true[n], atol=1e-6, rtol=1e-5)


def test_oracle_sg_unroll_form_counts_the_recurrent_path_twice(small_cfg):
    _, _, true, fast = _oracle_paths(small_cfg, "fast", "unroll")
    ratios = [float(fast[f"{c}.cell.weight_hh"].norm() / true[f"{c}.cell.weight_hh"].norm()) for c in CONTROLLERS]
    print("unroll form / true gradient norm with an oracle SG, T=10:", [round(r, 3) for r in ratios])
    assert max(ratios) > 1.02


def test_holding_the_cell_state_fixed_too_misses_the_cell_chain(small_cfg):
    """Why the step form keeps c_{t-1} live: with h_{t-1} and c_{t-1} both held fixed, an oracle SG
    does not give the true gradient (g_t is dL/dh_t; the path through c_{t+1} is not in it)."""
    learner, batch, true, _ = _oracle_paths(small_cfg, "reference", "step")
    nmn = learner.nmn
    x = nmn.encode(batch.x)
    trace, _ = nmn.unroll(x, nmn.initial_state(x.shape[0]))
    states_c = {}
    for c in CONTROLLERS:  # recorded c_{t-1}: replay the controller to get its cell states
        hc, cs = trace.start[c], []
        for inp in trace.inputs[c]:
            cs.append(hc[1].detach())
            hc = nmn.controller(c).cell(inp, hc)
        states_c[c] = cs
    result = learner.paths(batch)[2]
    for c in CONTROLLERS:
        ctl = nmn.controller(c)
        h_prev = [trace.start[c][0]] + [v.detach() for v in trace.h[c][:-1]]
        outs = [ctl.cell(u, (h, cc))[0] for u, h, cc in zip(trace.inputs[c], h_prev, states_c[c])]
        g = result.targets.g[c] / batch.x.shape[0]
        got = torch.autograd.grad(outs, [ctl.cell.weight_hh], grad_outputs=[g[:, t] for t in range(len(outs))])[0]
        rel = float((got - true[f"{c}.cell.weight_hh"]).norm() / true[f"{c}.cell.weight_hh"].norm())
        print(f"{c}: c_(t-1) held fixed too, relative error {rel:.3f}")
        assert rel > 0.05
