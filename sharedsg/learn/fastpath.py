"""The fast path of Eq. 10: a synthetic gradient s_c,t ~ dL/dh_c,t pushed into controller c's weights.

``learner.fast_path`` chooses the graph s_t goes through (c is an LSTM: gates from the
pre-activation pre_t = W_ih u_t + W_hh h_{t-1} + b, c_t = f c_{t-1} + i g, h_t = o tanh(c_t)):

``step`` (default): through step t alone, its recurrent input h_{t-1} held fixed; its cell
state c_{t-1} stays a function of theta through the chain c_0 -> c_1 -> ... -> c_{t-1}.
    grad_fast = sum_t s_t . dh_t/dtheta |_{h_{t-1} fixed}

Why exactly this graph. theta enters the loss only through the pre-activations, so
    dL/dtheta = sum_t (dL/dpre_t) dpre_t/dtheta,
    dL/dpre_t = (dh_t/dpre_t)^T G_t + (dc_t/dpre_t)^T D_t,
with G_t = dL/dh_t the *total* derivative (every path from h_t to the loss: the memory,
the other controllers, h_{t+1}, h_{t+2}, ...) and D_t the paths from c_t that do not pass
through h_t: c_t -> c_{t+1} -> ... -> c_tau -> h_tau, i.e.
    D_t = sum_{tau > t} (prod_{t < s <= tau} f_s) o_tau (1 - tanh^2 c_tau) G_tau.
D_t is made of G's of later steps along the cell-state chain, and the chain term of
s_tau . dh_tau/dtheta (c_{tau-1} live, h_{tau-1} fixed) is exactly G_tau's share of it. So with
the oracle s_t = G_t the step form equals the true gradient (tests: to 1e-5). The SG target
g_t is that total G_t (per-sample loss), so:
- holding c_{t-1} fixed too would drop D_t (G_t does not contain it): not the true gradient;
- letting h_{t-1} vary too (``unroll``) adds s_t . dh_t/dh_{t-1} dh_{t-1}/dtheta, a path
  G_{t-1} already contains: counted twice (with an oracle SG, 1.03-1.07x the true gradient's
  norm at T = 10 in tests/test_fastpath.py).

``unroll``: through the controller's own recurrence across the batch (h and c), from its
state at the batch start (the form used before; kept as an option).

Both are computed here from a :class:`sharedsg.model.fused.Trace` with no autograd graph:
the step form is one batched gate computation over all (T * B) rows, an elementwise reverse
scan for the cell-state chain, and one matmul per weight; the unroll form one small matmul per
step for the three controllers at once. The reference (per-step autograd) forms are in
:class:`sharedsg.model.controllers.Controller` (``unroll_step_form``, ``unroll``).
"""

from __future__ import annotations

from typing import Dict

import torch

from sharedsg.model.controllers import CONTROLLERS
from sharedsg.model.fused import Trace, lstm_step_backward, param_grads


def fast_gradients(tr: Trace, s: Dict[str, torch.Tensor], form: str):
    """controller -> (weight_ih, weight_hh, bias_ih, bias_hh) gradients of sum_t s_t . h_t over
    ``form``'s graph; ``s``: controller -> (T, B, k), time-major (already divided by B)."""
    fac = tr.factors()  # (3, T, B, ...)
    sg = torch.stack([s[c] for c in CONTROLLERS])  # (3, T, B, k)
    n, t_len, b, k = sg.shape
    dpre = torch.empty(n, t_len, b, 4, k, dtype=sg.dtype, device=sg.device)
    if form == "step":
        dc = sg * fac.e  # dc_t from s_t, then the cell-state chain back in time
        steps, f_steps = dc.unbind(1), fac.f.unbind(1)
        for t in range(t_len - 2, -1, -1):
            steps[t].addcmul_(steps[t + 1], f_steps[t + 1])
        torch.mul(dc.unsqueeze(-2), fac.ifg, out=dpre[..., :3, :])
        torch.mul(sg, fac.do, out=dpre[..., 3, :])
    else:
        w_hh = torch.stack([tr.cells[c][1] for c in CONTROLLERS])  # (3, 4k, k)
        per_step, s_steps, dpre_steps = fac.steps(1), sg.unbind(1), dpre.unbind(1)
        dh_rec = dc_rec = None
        for t in range(t_len - 1, -1, -1):
            g = s_steps[t] if dh_rec is None else s_steps[t] + dh_rec
            dc_rec = lstm_step_backward(g, dc_rec, per_step, t, dpre_steps[t])
            dh_rec = torch.bmm(dpre_steps[t].view(n, b, 4 * k), w_hh)
    return {c: param_grads(dpre[i], tr.inputs[c], tr.h[c][:-1]) for i, c in enumerate(CONTROLLERS)}
