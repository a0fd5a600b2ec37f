"""SG^IC, SG^OC, SG^WC (Eq. 9) as one batched computation, with a hand-written backward for Eq. 11.

``model.impl=fast``. The three predictors of a group have the same shapes (input k + d,
``sg.hidden`` units, output k), so their weights stack on a leading dimension of 3 and every
step is one batched matmul for all three: the ``lstm`` kind runs its recurrence once for the
three (8 small ops per step) and back-propagates through it by hand (the LSTM identities of
:mod:`sharedsg.model.fused`); the ``mlp`` kind is three batched matmuls with autograd.
The parameters stay the predictors' own (names, optimiser state and checkpoints unchanged);
the reference is :meth:`sharedsg.model.synthetic.SGModules.forward` (tests: equal to 1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import torch

from sharedsg.model.controllers import CONTROLLERS
from sharedsg.model.fused import LSTMFactors, lstm_step_backward
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


@dataclass
class _LSTMTrace:
    x: torch.Tensor  # (3, T * B, in), time-major rows
    hs: torch.Tensor  # (T + 1, 3, B, H)
    cs: torch.Tensor  # (T + 1, 3, B, H)
    act: torch.Tensor  # (T, 3, B, 4, H)
    tc: torch.Tensor  # (T, 3, B, H)


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
    w_ih, w_hh, b_ih, b_hh, w_head, b_head = _stacked(mods, LSTM_NAMES)
    x = _inputs(h, y)  # (3, B, T, in)
    n, b, t_len, d = x.shape
    hid = w_hh.shape[-1]
    xt = x.transpose(1, 2).reshape(n, t_len * b, d)  # time-major rows
    pre_x = torch.baddbmm((b_ih + b_hh).unsqueeze(1), xt, w_ih.transpose(1, 2))
    pre_x = pre_x.view(n, t_len, b, 4 * hid).transpose(0, 1).contiguous()  # (T, 3, B, 4H)
    hs = torch.zeros(t_len + 1, n, b, hid, dtype=x.dtype, device=x.device)
    cs = torch.zeros_like(hs)
    act = torch.empty(t_len, n, b, 4, hid, dtype=x.dtype, device=x.device)
    tc = torch.empty(t_len, n, b, hid, dtype=x.dtype, device=x.device)
    w_hh_t = w_hh.transpose(1, 2)
    pre_steps, h_steps, c_steps, tc_steps = pre_x.unbind(0), hs.unbind(0), cs.unbind(0), tc.unbind(0)
    act_flat = act.view(t_len, n, b, 4 * hid).unbind(0)
    gate = [a.unbind(-2) for a in act.unbind(0)]  # i, f, g, o per step
    for t in range(t_len):
        pre = torch.baddbmm(pre_steps[t], h_steps[t], w_hh_t)
        torch.sigmoid(pre, out=act_flat[t])
        i, f, g, o = gate[t]
        torch.tanh(pre[..., 2 * hid:3 * hid], out=g)
        torch.mul(f, c_steps[t], out=c_steps[t + 1]).addcmul_(i, g)
        torch.tanh(c_steps[t + 1], out=tc_steps[t])
        torch.mul(o, tc_steps[t], out=h_steps[t + 1])
    feats = hs[1:].permute(1, 0, 2, 3).reshape(n, t_len * b, hid)  # (3, T * B, H)
    out = torch.baddbmm(b_head.unsqueeze(1), feats, w_head.transpose(1, 2)).view(n, t_len, b, -1)
    preds = {c: out[i].transpose(0, 1) for i, c in enumerate(CONTROLLERS)}
    if not with_backward:
        return preds, None
    tr = _LSTMTrace(x=xt, hs=hs, cs=cs, act=act, tc=tc)

    def backward(dpred: torch.Tensor) -> Dict[str, torch.Tensor]:
        with torch.no_grad():
            return _backward_lstm(tr, feats, (w_ih, w_hh, w_head), dpred)

    return preds, backward


def _backward_lstm(tr: _LSTMTrace, feats: torch.Tensor, weights, dpred: torch.Tensor) -> Dict[str, torch.Tensor]:
    w_ih, w_hh, w_head = weights
    n, b, t_len, k = dpred.shape
    hid = w_hh.shape[-1]
    dp = dpred.transpose(1, 2).reshape(n, t_len * b, k)
    g_head_w = torch.bmm(dp.transpose(1, 2), feats)
    g_head_b = dp.sum(1)
    d_feats = torch.bmm(dp, w_head).view(n, t_len, b, hid).transpose(0, 1).contiguous()  # (T, 3, B, H)
    i, f, g, o = tr.act.unbind(-2)
    c_prev = tr.cs[:-1]
    fac = LSTMFactors(e=o * (1 - tr.tc * tr.tc), do=tr.tc * o * (1 - o),
                      ifg=torch.stack([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g)], dim=-2), f=f)
    dpre = torch.empty(t_len, n, b, 4, hid, dtype=dp.dtype, device=dp.device)
    dpre_steps, df_steps = dpre.unbind(0), d_feats.unbind(0)
    dh_rec = dc_rec = None
    for t in range(t_len - 1, -1, -1):
        gt = df_steps[t] if dh_rec is None else df_steps[t] + dh_rec
        dc_rec = lstm_step_backward(gt, dc_rec, fac, t, dpre_steps[t])
        dh_rec = torch.bmm(dpre_steps[t].view(n, b, 4 * hid), w_hh)
    flat = dpre.permute(1, 0, 2, 3, 4).reshape(n, t_len * b, 4 * hid)
    h_prev = tr.hs[:-1].permute(1, 0, 2, 3).reshape(n, t_len * b, hid)
    g_bias = flat.sum(1)
    grads = (torch.bmm(flat.transpose(1, 2), tr.x), torch.bmm(flat.transpose(1, 2), h_prev), g_bias, g_bias,
             g_head_w, g_head_b)
    return {f"predictors.{c}.{name}": grads[j][i] for i, c in enumerate(CONTROLLERS) for j, name in enumerate(LSTM_NAMES)}
