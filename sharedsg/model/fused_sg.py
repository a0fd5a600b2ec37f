"""SG^IC, SG^OC, SG^WC (Eq. 9) as one batched computation, with a hand-written backward for Eq. 11.

``model.impl=fast``. The three predictors of a group have the same shapes (input k + d,
``sg.hidden`` units, output k), so their weights stack on a leading dimension of 3 and every
step is one batched matmul for all three: the ``lstm`` kind runs its recurrence once for the
three predictors as three fused ``torch.lstm`` calls and back-propagates through them by hand (the LSTM
identities of :mod:`sharedsg.model.fused`; the gates of all steps in one batched matmul, the
reverse sweep over time one batched matmul per step for the three); the ``mlp`` kind is three batched matmuls with autograd.
The parameters stay the predictors' own (names, optimiser state and checkpoints unchanged);
the reference is :meth:`sharedsg.model.synthetic.SGModules.forward` (tests: equal to 1e-5).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import torch

from sharedsg.model.controllers import CONTROLLERS
from sharedsg.model.fused import LSTMFactors, lstm_factors_from_gates, lstm_step_backward
from sharedsg.model.synthetic import SGModules

Backward = Callable[[torch.Tensor], Dict[str, torch.Tensor]]
"""d loss / d predictions (3, B, T, k) -> parameter name -> gradient."""

LSTM_NAMES = ("body.weight_ih_l0", "body.weight_hh_l0", "body.bias_ih_l0", "body.bias_hh_l0", "head.weight", "head.bias")
MLP_NAMES = ("body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias", "head.weight", "head.bias")


def _stacked(mods: SGModules, names: Tuple[str, ...]) -> List[torch.Tensor]:
    params = [dict(mods.predictors[c].named_parameters()) for c in CONTROLLERS]
    return [torch.stack([p[n] for p in params]) for n in names]


def _inputs(h: Dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """(3, B, T, k + d): each controller's (h, y), the SG input of Eq. 9."""
    hs = torch.stack([h[c] for c in CONTROLLERS])
    return torch.cat([hs, y.unsqueeze(0).expand(len(CONTROLLERS), *y.shape)], dim=-1)


def predict(mods: SGModules, h: Dict[str, torch.Tensor], y: torch.Tensor,
            with_backward: bool = False) -> Tuple[Dict[str, torch.Tensor], Backward | None]:
    """Eq. 9 for the three controllers at once: controller -> (B, T, k); with ``with_backward`` also
    the function that turns d loss / d predictions into parameter gradients."""
    kind = next(iter(mods.predictors.values())).kind
    if kind == "mlp":
        return _predict_mlp(mods, h, y, with_backward)
    with torch.no_grad():
        return _predict_lstm(mods, h, y, with_backward)


def _predict_mlp(mods, h, y, with_backward):
    with torch.set_grad_enabled(with_backward):
        w1, b1, w2, b2, wh, bh = _stacked(mods, MLP_NAMES)
        x = _inputs(h, y)
        n, b, t_len, d = x.shape
        flat = x.reshape(n, b * t_len, d)
        a = torch.relu(torch.baddbmm(b1.unsqueeze(1), flat, w1.transpose(1, 2)))
        a = torch.relu(torch.baddbmm(b2.unsqueeze(1), a, w2.transpose(1, 2)))
        out = torch.baddbmm(bh.unsqueeze(1), a, wh.transpose(1, 2)).view(n, b, t_len, -1)
    preds = {c: out[i].detach() for i, c in enumerate(CONTROLLERS)}
    if not with_backward:
        return preds, None
    leaves = [(f"{c}.{name}", p) for c in CONTROLLERS for name, p in mods.predictors[c].named_parameters()]

    def backward(dpred: torch.Tensor) -> Dict[str, torch.Tensor]:
        got = torch.autograd.grad(out, [p for _, p in leaves], grad_outputs=dpred)
        return {f"predictors.{n}": g for (n, _), g in zip(leaves, got)}

    return preds, backward


def _predict_lstm(mods, h, y, with_backward):
    cells = [mods.predictors[c].body for c in CONTROLLERS]
    x = _inputs(h, y).transpose(1, 2).contiguous()  # (3, T, B, in)
    n, t_len, b, d = x.shape
    hid = cells[0].hidden_size
    zeros = x.new_zeros(1, b, hid)
    # each predictor's recurrence in one fused torch.lstm call (oneDNN on CPU: the loop over time in C++)
    outs = [torch.lstm(x[i], (zeros, zeros), list(cell._flat_weights), True, 1, 0.0, False, False, False)[0]
            for i, cell in enumerate(cells)]
    hs = torch.cat([x.new_zeros(n, 1, b, hid), torch.stack(outs)], dim=1)  # (3, T + 1, B, H)
    w_head = torch.stack([mods.predictors[c].head.weight for c in CONTROLLERS])
    b_head = torch.stack([mods.predictors[c].head.bias for c in CONTROLLERS])
    feats = hs[:, 1:].reshape(n, t_len * b, hid)  # a view
    out = torch.baddbmm(b_head.unsqueeze(1), feats, w_head.transpose(1, 2).contiguous()).view(n, t_len, b, -1)
    preds = {c: out[i].transpose(0, 1) for i, c in enumerate(CONTROLLERS)}
    if not with_backward:
        return preds, None

    def backward(dpred: torch.Tensor) -> Dict[str, torch.Tensor]:
        with torch.no_grad():
            return _backward_lstm(mods, x.view(n, t_len * b, d), hs, feats, w_head, dpred)

    return preds, backward


def _backward_lstm(mods: SGModules, xt: torch.Tensor, hs: torch.Tensor, feats: torch.Tensor, w_head: torch.Tensor,
                   dpred: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Eq. 11's gradient through the heads and the three LSTMs: the gates of all steps from the
    recorded h (one batched matmul), the cell states by their scan, then the reverse sweep."""
    w_ih, w_hh, b_ih, b_hh = _stacked(mods, LSTM_NAMES[:4])
    n, b, t_len, k = dpred.shape
    hid = w_hh.shape[-1]
    h_prev = hs[:, :-1].reshape(n, t_len * b, hid)  # a view
    pre = torch.baddbmm((b_ih + b_hh).unsqueeze(1), xt, w_ih.transpose(1, 2).contiguous())
    pre.baddbmm_(h_prev, w_hh.transpose(1, 2).contiguous())
    act = pre.view(n, t_len, b, 4, hid).sigmoid()
    act[..., 2, :] = pre.view(n, t_len, b, 4, hid)[..., 2, :].tanh()
    i, f, g, o = act.unbind(-2)
    cs = _cell_scan(i * g, f)
    fac = lstm_factors_from_gates(act, cs)
    dp = dpred.transpose(1, 2).reshape(n, t_len * b, k)
    g_head_w = torch.bmm(dp.transpose(1, 2), feats)
    g_head_b = dp.sum(1)
    d_feats = torch.bmm(dp, w_head).view(n, t_len, b, hid)
    dpre = _reverse_sweep(d_feats, LSTMFactors(*(v.unbind(1) for v in (fac.e, fac.do, fac.ifg, fac.f))), w_hh)
    flat = dpre.view(n, t_len * b, 4 * hid)
    g_bias = flat.sum(1)
    flat_t = flat.transpose(1, 2)
    grads = (torch.bmm(flat_t, xt), torch.bmm(flat_t, h_prev), g_bias, g_bias, g_head_w, g_head_b)
    return {f"predictors.{c}.{name}": grads[j][i] for i, c in enumerate(CONTROLLERS) for j, name in enumerate(LSTM_NAMES)}


def _cell_scan(ig: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """c_t = f_t c_{t-1} + i_t g_t from c_0 = 0, over dim 1: (n, T, B, H) -> (n, T + 1, B, H)."""
    n, t_len, b, hid = ig.shape
    cs = torch.zeros(n, t_len + 1, b, hid, dtype=ig.dtype, device=ig.device)
    c_steps, ig_steps, f_steps = cs.unbind(1), ig.unbind(1), f.unbind(1)
    for t in range(t_len):
        torch.addcmul(ig_steps[t], f_steps[t], c_steps[t], out=c_steps[t + 1])
    return cs


def _reverse_sweep(d_out: torch.Tensor, fac: LSTMFactors, w_hh: torch.Tensor) -> torch.Tensor:
    """The LSTM backward over dim 1 (time) for n LSTMs at once (:mod:`sharedsg.model.fused`'s
    identities): d_out (n, T, B, H) the gradients arriving at h_t from outside the recurrence ->
    the gate pre-activation gradients (n, T, B, 4, H)."""
    n, t_len, b, hid = d_out.shape
    dpre = torch.empty(n, t_len, b, 4, hid, dtype=d_out.dtype, device=d_out.device)
    dpre_steps, d_steps = dpre.unbind(1), d_out.unbind(1)
    dh = dc = None
    for t in range(t_len - 1, -1, -1):
        g = d_steps[t] if dh is None else d_steps[t] + dh
        dc = lstm_step_backward(g, dc, fac, t, dpre_steps[t])
        dh = torch.bmm(dpre_steps[t].view(n, b, 4 * hid), w_hh)
    return dpre
