"""The memory module (Eq. 2-7) over a whole sequence, with a hand-written backward pass.

``model.impl=fast``. The step is bound by per-time-step overhead (tiny LSTM cells, a
10 x 32 memory), not by arithmetic, so this module records no autograd graph per step:

- forward (:func:`core_forward`): the input controller, whose input x_t does not depend on
  the memory, runs as one fused ``torch.lstm`` over the sequence; OC and WC are one
  ``torch.lstm_cell`` each per step; addressing (Eq. 3, or cosine), read (Eq. 4) and
  write (Eq. 7) are a handful of batched ops. Everything the backward needs is kept,
  time-major.
- backward (:func:`core_backward`): one reverse sweep through Eq. 7, 6, 5, 4, 3, 2 that
  produces, on the way, the total derivative dL/dh_c,t of every controller output (the SG
  targets) and the gate pre-activation gradients; every parameter gradient is then one
  matmul over all (T * B) rows.

The LSTM identities used (gates i, f, g, o; c_t = f c_{t-1} + i g; h_t = o tanh(c_t)), with
G = dL/dh_t total and dc_rec = dL/dc_t through c_{t+1}:

    dc = G o (1 - tanh^2 c_t) + dc_rec           dc_{t-1} = dc f
    dpre_i = dc g i (1 - i)   dpre_f = dc c_{t-1} f (1 - f)
    dpre_g = dc i (1 - g^2)   dpre_o = G tanh(c_t) o (1 - o)
    dL/dh_{t-1} (through step t) = dpre W_hh,   dL/du_t = dpre W_ih

:class:`LSTMFactors` holds the parts of these that do not depend on G, computed for all
steps at once. ``model.impl=reference`` (the per-step autograd graph of :mod:`sharedsg.model.nmn`)
gives the same numbers (tests: 1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from sharedsg.model.controllers import CONTROLLERS

Cell = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # weight_ih, weight_hh, bias_ih, bias_hh


@dataclass
class LSTMFactors:
    """Local derivatives of LSTMs over all steps: (..., T, B, k) (leading dims: which LSTM)."""

    e: torch.Tensor  # o (1 - tanh^2 c_t): dc = G e + dc_rec
    do: torch.Tensor  # tanh(c_t) o (1 - o): dpre_o = G do
    ifg: torch.Tensor  # (..., T, B, 3, k): [g i (1 - i), c_{t-1} f (1 - f), i (1 - g^2)]: dpre_ifg = dc ifg
    f: torch.Tensor  # forget gate: dc_{t-1} = dc f

    def __getitem__(self, i: int) -> "LSTMFactors":
        return LSTMFactors(self.e[i], self.do[i], self.ifg[i], self.f[i])

    def steps(self, dim: int) -> "LSTMFactors":
        """Per-step views along ``dim`` as lists (indexing a list launches no kernel)."""
        return LSTMFactors(*(v.unbind(dim) for v in (self.e, self.do, self.ifg, self.f)))


def controller_factors(tr: "Trace") -> LSTMFactors:
    """The three controllers' factors stacked, (3, T, B, ...) in ``CONTROLLERS`` order: their gates
    for all steps from the recorded inputs and h_{t-1} (two matmuls each), one activation pass, the
    input controller's cell states rebuilt by the scan c_t = f c_{t-1} + i g (its ``torch.lstm``
    does not return them), then each factor one fused elementwise kernel for all three."""
    t_len, b, k = tr.h["oc"].shape[0] - 1, tr.h["oc"].shape[1], tr.h["oc"].shape[2]
    ref = tr.h["oc"]
    pre = torch.empty(len(CONTROLLERS), t_len * b, 4 * k, dtype=ref.dtype, device=ref.device)
    for n, c in enumerate(CONTROLLERS):
        w_ih, w_hh, b_ih, b_hh = tr.cells[c]
        torch.addmm(b_ih + b_hh, tr.inputs[c].reshape(t_len * b, -1), w_ih.t(), out=pre[n])
        pre[n].addmm_(tr.h[c][:-1].reshape(t_len * b, k), w_hh.t())
    act = pre.view(-1, t_len, b, 4, k).sigmoid()
    act[..., 2, :] = pre.view(-1, t_len, b, 4, k)[..., 2, :].tanh()
    cs = torch.empty(len(CONTROLLERS), t_len + 1, b, k, dtype=ref.dtype, device=ref.device)
    cs[1], cs[2] = tr.cs["oc"], tr.cs["wc"]
    cs[0, 0] = tr.c0["ic"]
    ig, f = act[0, :, :, 0] * act[0, :, :, 2], act[0, :, :, 1]
    c_steps, ig_steps, f_steps = cs[0].unbind(0), ig.unbind(0), f.unbind(0)
    for t in range(t_len):
        torch.addcmul(ig_steps[t], f_steps[t], c_steps[t], out=c_steps[t + 1])
    return lstm_factors_from_gates(act, cs, time_dim=1)


def lstm_factors_from_gates(act: torch.Tensor, cs: torch.Tensor, time_dim: int = 1) -> LSTMFactors:
    """:class:`LSTMFactors` from the gate activations (..., T, B, 4, k) and the cell states
    c_0 .. c_T along ``time_dim``; each factor one fused elementwise kernel (sigmoid/tanh backward)."""
    i, f, g, o = act.unbind(-2)
    c_prev, c = cs.narrow(time_dim, 0, cs.shape[time_dim] - 1), cs.narrow(time_dim, 1, cs.shape[time_dim] - 1)
    tc = c.tanh()
    ifg = torch.empty_like(act[..., :3, :])
    sig_bw, tanh_bw = torch.ops.aten.sigmoid_backward, torch.ops.aten.tanh_backward
    sig_bw.grad_input(g, i, grad_input=ifg[..., 0, :])  # g i (1 - i)
    sig_bw.grad_input(c_prev, f, grad_input=ifg[..., 1, :])  # c_{t-1} f (1 - f)
    tanh_bw.grad_input(i, g, grad_input=ifg[..., 2, :])  # i (1 - g^2)
    return LSTMFactors(e=tanh_bw(o, tc), do=sig_bw(tc, o), ifg=ifg, f=f)


@dataclass
class Trace:
    """One forward of the memory module, time-major. ``h[c]`` and ``cs[c]`` are (T + 1, B, k)
    with the start state at index 0; ``inputs[c]`` (T, B, in_c) are x_t, m_bar_t, m_t."""

    cells: Dict[str, Cell]
    inputs: Dict[str, torch.Tensor]
    h: Dict[str, torch.Tensor]
    cs: Dict[str, torch.Tensor]  # oc, wc (ic's are rebuilt by controller_factors)
    c0: Dict[str, torch.Tensor]
    c_last: Dict[str, torch.Tensor]
    mem: List[torch.Tensor]  # T + 1 views (B, l, k) of mem_all: M_0 .. M_T
    mem_all: torch.Tensor  # (T + 1, B, l, k)
    diff: List[torch.Tensor]  # T tensors (B, l, k): m'_t - M_{t-1}
    z: torch.Tensor  # (T, B, l)
    cosine: Optional[Dict[str, List[torch.Tensor]]]  # strength * sim, den / strength, |M_i| per step (B, l, 1); |q| (T, B, 1, 1)
    strength: float
    _factors: List[LSTMFactors] = field(default_factory=list)

    def factors(self) -> LSTMFactors:
        """:func:`controller_factors`, computed once: (3, T, B, ...)."""
        if not self._factors:
            self._factors.append(controller_factors(self))
        return self._factors[0]

    def addressing_factors(self) -> Dict[str, Optional[List[torch.Tensor]]]:
        """Per-step factors of the addressing backward. With u = dL/da (times strength / den for
        cosine), dL/dq = sum_i u_i K_i and dL/dM_i += u_i J_i, where for dot addressing K = M and
        J = q, and for cosine K_i = M_i - bq_i q, J_i = q - c_i M_i with bq = sim |M_i| / |q| and
        c = sim |q| / |M_i| (the norms' derivatives folded in)."""
        q1 = self.outputs("ic").unsqueeze(2)  # (T, B, 1, k)
        cos = self.cosine
        if cos is None:
            return {"a": None, "k": self.mem[:-1], "j": list(q1.unbind(0))}
        mem = self.mem_all[:-1]  # (T, B, l, k): M_{t-1}
        den, sim, norm = (torch.stack(cos[n]) for n in ("den", "sim", "norm"))  # (T, B, l, 1), scaled
        qn, sim = cos["qn"], sim / self.strength
        bq, c = sim * norm / qn, sim * qn / norm
        return {"a": list(den.reciprocal().unbind(0)), "k": list(torch.addcmul(mem, bq, q1, value=-1.0).unbind(0)),
                "j": list(torch.addcmul(q1, c, mem, value=-1.0).unbind(0))}

    def outputs(self, c: str) -> torch.Tensor:
        """Controller c's outputs h_t, (T, B, k)."""
        return self.h[c][1:]


def core_forward(x: torch.Tensor, mem0: torch.Tensor, h0: Dict[str, torch.Tensor], c0: Dict[str, torch.Tensor],
                 cells: Dict[str, Cell], addressing: str, strength: float) -> Trace:
    """Eq. 2-7 for all T steps of x (B, T, in) from the state (mem0, h0, c0); no autograd graph."""
    b, t_len, _ = x.shape
    xt = x.transpose(0, 1).contiguous()
    q_all, _, c_ic_last = torch.lstm(xt, (h0["ic"].unsqueeze(0), c0["ic"].unsqueeze(0)), list(cells["ic"]),
                                     True, 1, 0.0, False, False, False)
    cosine = addressing == "cosine"
    q_steps = q_all.unsqueeze(-1).unbind(0)  # (B, k, 1) per step
    # the attention is kept as (B, l, 1) throughout, so no step needs a squeeze or unsqueeze
    qn = torch.linalg.vector_norm(q_all, dim=-1, keepdim=True).unsqueeze(-1) if cosine else None  # (T, B, 1, 1)
    qn_steps = (qn / strength).unbind(0) if cosine else ()
    eps = torch.full((), 1e-8 / strength, dtype=mem0.dtype, device=mem0.device)  # a tensor: no scalar copy per step
    mem_all = torch.empty(t_len + 1, *mem0.shape, dtype=mem0.dtype, device=mem0.device)  # M_0 .. M_T
    mem_all[0] = mem0
    mems = mem_all.unbind(0)
    mem, diffs, zs, mbars = mems[0], [], [], []
    sims: List[torch.Tensor] = []
    dens: List[torch.Tensor] = []
    norms: List[torch.Tensor] = []
    hc = {c: (h0[c], c0[c]) for c in ("oc", "wc")}
    hs: Dict[str, List[torch.Tensor]] = {"oc": [h0["oc"]], "wc": [h0["wc"]]}
    cs: Dict[str, List[torch.Tensor]] = {"oc": [c0["oc"]], "wc": [c0["wc"]]}
    for t in range(t_len):
        dot = torch.bmm(mem, q_steps[t])  # q_t^T M_{t-1}: (B, l, 1)
        if cosine:  # strength * sim = dot / ((|q| |M_i| + 1e-8) / strength)
            m_norm = torch.linalg.vector_norm(mem, dim=-1, keepdim=True)
            den = torch.addcmul(eps, qn_steps[t], m_norm)
            sim = dot / den
            z = torch.softmax(sim, dim=1)
            sims.append(sim), dens.append(den), norms.append(m_norm)
        else:
            z = torch.softmax(dot, dim=1)  # Eq. 3
        m_bar = (mem * z).sum(1)  # Eq. 4 (a batched 1 x l matmul is slower here)
        hc["oc"] = torch.lstm_cell(m_bar, hc["oc"], *cells["oc"])  # Eq. 5
        hc["wc"] = torch.lstm_cell(hc["oc"][0], hc["wc"], *cells["wc"])  # Eq. 6
        diff = hc["wc"][0].unsqueeze(1) - mem
        mem = torch.addcmul(mem, z, diff, out=mems[t + 1])  # Eq. 7: (1 - z_i) M_i + z_i m'_t
        for c in ("oc", "wc"):
            hs[c].append(hc[c][0])
            cs[c].append(hc[c][1])
        diffs.append(diff), zs.append(z), mbars.append(m_bar)
    h = {"ic": torch.cat([h0["ic"].unsqueeze(0), q_all])}
    h.update({c: torch.stack(hs[c]) for c in ("oc", "wc")})
    c_stack = {c: torch.stack(cs[c]) for c in ("oc", "wc")}
    inputs = {"ic": xt, "oc": torch.stack(mbars), "wc": h["oc"][1:]}
    return Trace(cells=cells, inputs=inputs, h=h, cs=c_stack, c0=dict(c0),
                 c_last={"ic": c_ic_last[0], "oc": hc["oc"][1], "wc": hc["wc"][1]},
                 mem=list(mems), mem_all=mem_all, diff=diffs, z=torch.stack(zs).squeeze(-1),
                 cosine={"sim": sims, "den": dens, "norm": norms, "qn": qn} if cosine else None,
                 strength=strength)


@dataclass
class CoreGrads:
    """Gradients of the memory module (time-major where per step)."""

    g: Dict[str, torch.Tensor]  # controller -> (T, B, k): total dL/dh_c,t
    params: Dict[str, Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]  # as Cell
    dx: torch.Tensor  # (T, B, in)
    dmem0: torch.Tensor  # (B, l, k)
    dh0: Dict[str, torch.Tensor]
    dc0: Dict[str, torch.Tensor]


def lstm_step_backward(g: torch.Tensor, dc_rec: Optional[torch.Tensor], fac: LSTMFactors, t: int,
                       dpre_t: torch.Tensor) -> torch.Tensor:
    """Writes step t's gate gradients into ``dpre_t`` (..., 4, k) from G = dL/dh_t (total) and
    dc_rec = dL/dc_t through c_{t+1}; returns dL/dc_{t-1}. Any leading dimensions (B, or
    controllers x B)."""
    dc = g * fac.e[t] if dc_rec is None else torch.addcmul(dc_rec, g, fac.e[t])
    torch.mul(dc.unsqueeze(-2), fac.ifg[t], out=dpre_t[..., :3, :])
    torch.mul(g, fac.do[t], out=dpre_t[..., 3, :])
    return dc * fac.f[t]


def param_grads(dpre: torch.Tensor, inputs: torch.Tensor, h_prev: torch.Tensor):
    """(weight_ih, weight_hh, bias_ih, bias_hh) gradients: sums over all steps and rows."""
    t_len, b, _, k = dpre.shape
    flat = dpre.reshape(t_len * b, 4 * k)
    gb = flat.sum(0)
    return flat.t() @ inputs.reshape(t_len * b, -1), flat.t() @ h_prev.reshape(t_len * b, k), gb, gb.clone()


def core_backward(tr: Trace, dh_direct: Dict[str, Optional[torch.Tensor]],
                  dz_direct: Optional[torch.Tensor] = None, dmem_last: Optional[torch.Tensor] = None,
                  dh_last: Optional[Dict[str, Optional[torch.Tensor]]] = None,
                  dc_last: Optional[Dict[str, Optional[torch.Tensor]]] = None) -> CoreGrads:
    """Back-propagates the gradients arriving at the outputs (``dh_direct``: controller -> (T, B, k)
    time-major or None; the attention, the final memory and final controller states) through
    Eq. 7 .. 2, one reverse sweep. Every per-step view is taken before the sweep, so the sweep
    is only arithmetic, 29 small kernels per step:

    - the SG targets G (3, T, B, k) start as the direct gradients and collect the rest in place
      (the recurrent dpre_{t+1} W_hh and WC's input gradient into OC's G by ``addmm_``);
    - the three controllers' dL/dc_{t-1} = dc_t f_t in one kernel per step.

    (A batched 1 x l matmul for z^T dL/dM_t or u^T K costs more than a multiply and a sum here.)"""
    fac = tr.factors()
    t_len, b, k = tr.h["ic"].shape[0] - 1, tr.h["ic"].shape[1], tr.h["ic"].shape[2]
    ref = tr.h["oc"]
    opts = {"dtype": ref.dtype, "device": ref.device}
    ic, oc, wc = range(len(CONTROLLERS))  # CONTROLLERS order, as in the factors
    g = torch.zeros(len(CONTROLLERS), t_len, b, k, **opts)
    for n, c in enumerate(CONTROLLERS):
        if dh_direct.get(c) is not None:
            g[n].copy_(dh_direct[c])
        if (dh_last or {}).get(c) is not None:
            g[n, -1].add_(dh_last[c])
    dpre = torch.empty(len(CONTROLLERS), t_len, b, 4, k, **opts)
    # per-step views, [controller][t]
    gs = [v.unbind(0) for v in g.unbind(0)]
    e, do, ifg = ([v.unbind(0) for v in x.unbind(0)] for x in (fac.e, fac.do, fac.ifg))
    dpre_ifg = [v[:, :, :3].unbind(0) for v in dpre.unbind(0)]
    dpre_o = [v[:, :, 3].unbind(0) for v in dpre.unbind(0)]
    flat = [v.view(t_len, b, 4 * k).unbind(0) for v in dpre.unbind(0)]
    f_steps = fac.f.unbind(1)  # (3, B, k) per step
    dc = torch.empty(len(CONTROLLERS), b, k, **opts)  # dL/dc_t of this step
    dc_rec = torch.zeros_like(dc)  # dL/dc_t through c_{t+1}
    for n, c in enumerate(CONTROLLERS):
        if (dc_last or {}).get(c) is not None:
            dc_rec[n].copy_(dc_last[c])
    dcs, dc_recs = dc.unbind(0), dc_rec.unbind(0)
    w_ih = {n: tr.cells[c][0] for n, c in enumerate(CONTROLLERS)}
    w_hh = {n: tr.cells[c][1] for n, c in enumerate(CONTROLLERS)}
    dz_steps = dz_direct.unsqueeze(-1).unbind(0) if dz_direct is not None else None
    d_mem = dmem_last if dmem_last is not None else torch.zeros_like(tr.mem[-1])
    z3_steps = tr.z.unsqueeze(3).unbind(0)
    addr = tr.addressing_factors()
    softmax_bw = torch.ops.aten._softmax_backward_data
    dh0: Dict[str, torch.Tensor] = {}

    def lstm(n: int, t: int) -> None:
        """Controller n's gate gradients at step t from its complete G; dc[n] = dL/dc_t; the
        recurrent gradient into G_{t-1} (or dh0)."""
        gt, dc_n = gs[n][t], dcs[n]
        torch.addcmul(dc_recs[n], gt, e[n][t], out=dc_n)
        torch.mul(dc_n.unsqueeze(1), ifg[n][t], out=dpre_ifg[n][t])
        torch.mul(gt, do[n][t], out=dpre_o[n][t])
        if t:
            gs[n][t - 1].addmm_(flat[n][t], w_hh[n])
        else:
            dh0[CONTROLLERS[n]] = flat[n][0] @ w_hh[n]

    for t in range(t_len - 1, -1, -1):
        mem, z3 = tr.mem[t], z3_steps[t]
        # Eq. 7: M_t = M_{t-1} + z (m'_t - M_{t-1}); dL/dm'_t = z^T dL/dM_t
        gs[wc][t].add_((d_mem * z3).sum(1))
        dz = d_mem * tr.diff[t]
        d_prev = torch.addcmul(d_mem, z3, d_mem, value=-1.0)
        lstm(wc, t)  # Eq. 6
        gs[oc][t].addmm_(flat[wc][t], w_ih[wc])  # WC's input is m_t
        lstm(oc, t)  # Eq. 5
        dm_bar1 = (flat[oc][t] @ w_ih[oc]).unsqueeze(1)
        # Eq. 4: m_bar = z M_{t-1}
        dz = dz.addcmul_(mem, dm_bar1).sum(-1, keepdim=True)  # (B, l, 1)
        if dz_steps is not None:
            dz = dz + dz_steps[t]
        d_prev.addcmul_(z3, dm_bar1)
        # Eq. 3: z = softmax(a); a = q^T M_i (dot) or strength q^T M_i / (|q| |M_i| + 1e-8) (cosine)
        da = softmax_bw(dz, z3, 1, z3.dtype)
        u3 = da if addr["a"] is None else da * addr["a"][t]
        gs[ic][t].add_((u3 * addr["k"][t]).sum(1))  # dL/dq_t
        d_prev.addcmul_(u3, addr["j"][t])
        lstm(ic, t)  # Eq. 2
        torch.mul(dc, f_steps[t], out=dc_rec)
        d_mem = d_prev
    params = {c: param_grads(dpre[n], tr.inputs[c], tr.h[c][:-1]) for n, c in enumerate(CONTROLLERS)}
    dx = (dpre[ic].reshape(t_len * b, 4 * k) @ w_ih[ic]).view(t_len, b, -1)
    return CoreGrads(g={c: g[n] for n, c in enumerate(CONTROLLERS)}, params=params, dx=dx, dmem0=d_mem, dh0=dh0,
                     dc0={c: dc_rec[n] for n, c in enumerate(CONTROLLERS)})
