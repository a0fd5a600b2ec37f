"""The memory module (Eq. 2-7) over a whole sequence, with a hand-written backward pass.

``model.impl=fast``. The step is bound by per-time-step overhead (tiny LSTM cells, a
10 x 32 memory), not by arithmetic, so this module records no autograd graph per step:

- forward (:func:`core_forward`): the input controller, whose input x_t does not depend on
  the memory, runs as one fused ``torch.lstm`` over the sequence; OC and WC are stepped by
  hand (:class:`_Cell`: two in-place matmuls and seven elementwise kernels, their gate
  activations and cell states written straight into the trace); addressing (Eq. 3, or
  cosine), read (Eq. 4) and write (Eq. 7) are a handful of batched ops. Everything the
  backward needs is kept, time-major.
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

    def steps(self, dim: int) -> "LSTMFactors":
        """Per-step views along ``dim`` as lists (indexing a list launches no kernel)."""
        return LSTMFactors(*(v.unbind(dim) for v in (self.e, self.do, self.ifg, self.f)))


def controller_factors(tr: "Trace") -> LSTMFactors:
    """The three controllers' factors stacked, (3, T, B, ...) in ``CONTROLLERS`` order. OC's and WC's
    gate activations and cell states come from :func:`core_forward`; the input controller's
    (its ``torch.lstm`` returns neither) are rebuilt here: its gates for all steps from the
    recorded inputs and h_{t-1} (two matmuls, one activation pass), its cell states by the scan
    c_t = f c_{t-1} + i g. Then each factor is one fused elementwise kernel for all three."""
    t_len, b, k = tr.h["ic"].shape[0] - 1, tr.h["ic"].shape[1], tr.h["ic"].shape[2]
    w_ih, w_hh, b_ih, b_hh = tr.cells["ic"]
    act, cs = tr.gates, tr.cs
    pre = act[0].view(t_len * b, 4 * k)
    torch.addmm(b_ih + b_hh, tr.inputs["ic"].reshape(t_len * b, -1), w_ih.t(), out=pre)
    pre.addmm_(tr.h["ic"][:-1].reshape(t_len * b, k), w_hh.t())
    activate_gates(act[0])
    ig, f = act[0, :, :, 0] * act[0, :, :, 2], act[0, :, :, 1]
    c_steps, ig_steps, f_steps = cs[0].unbind(0), ig.unbind(0), f.unbind(0)
    for t in range(t_len):
        torch.addcmul(ig_steps[t], f_steps[t], c_steps[t], out=c_steps[t + 1])
    return lstm_factors_from_gates(act, cs, time_dim=1)


def activate_gates(gates: torch.Tensor) -> None:
    """LSTM gate activations in place on pre-activations (..., 4, k) in torch's (i, f, g, o) order."""
    gates[..., :2, :].sigmoid_()
    gates[..., 2, :].tanh_()
    gates[..., 3, :].sigmoid_()


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
    """One forward of the memory module, time-major. ``h[c]`` is (T + 1, B, k) with the start
    state at index 0; ``inputs[c]`` (T, B, in_c) are x_t, m_bar_t, m_t; ``gates`` and ``cs`` hold
    the three controllers' gate activations and cell states in ``CONTROLLERS`` order (the input
    controller's filled in by :func:`controller_factors`)."""

    cells: Dict[str, Cell]
    inputs: Dict[str, torch.Tensor]
    h: Dict[str, torch.Tensor]
    gates: torch.Tensor  # (3, T, B, 4, k), gates i, f, g, o activated
    cs: torch.Tensor  # (3, T + 1, B, k): c_0 .. c_T
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


class _Cell:
    """One controller stepped by hand (Eq. 5 or 6), writing its gate activations, cell state and
    output of every step into the trace's buffers: the bias is added to all steps' gates before the
    loop, so a step is two in-place matmuls and seven elementwise kernels."""

    def __init__(self, cell: Cell, gates: torch.Tensor, cs: torch.Tensor, h: torch.Tensor) -> None:
        w_ih, w_hh, b_ih, b_hh = cell
        t_len, b, _, k = gates.shape
        gates.copy_((b_ih + b_hh).view(4, k).expand(t_len, b, 4, k))
        self.w_ih, self.w_hh = w_ih.t(), w_hh.t()
        self.flat = gates.view(t_len, b, 4 * k).unbind(0)
        self.i, self.f, self.g, self.o = (v.unbind(0) for v in gates.unbind(2))
        self.if_ = gates[:, :, :2].unbind(0)
        self.c, self.h = cs.unbind(0), h.unbind(0)

    def step(self, t: int, inp: torch.Tensor) -> torch.Tensor:
        """h_t from the input u_t and the stored h_{t-1}, c_{t-1} (every view taken in advance)."""
        pre = self.flat[t]
        pre.addmm_(inp, self.w_ih)
        pre.addmm_(self.h[t], self.w_hh)
        self.if_[t].sigmoid_()
        g = self.g[t].tanh_()
        o = self.o[t].sigmoid_()
        c = torch.mul(self.i[t], g, out=self.c[t + 1])
        c.addcmul_(self.f[t], self.c[t])
        return torch.mul(o, c.tanh(), out=self.h[t + 1])


def core_forward(x: torch.Tensor, mem0: torch.Tensor, h0: Dict[str, torch.Tensor], c0: Dict[str, torch.Tensor],
                 cells: Dict[str, Cell], addressing: str, strength: float) -> Trace:
    """Eq. 2-7 for all T steps of x (B, T, in) from the state (mem0, h0, c0); no autograd graph."""
    b, t_len, _ = x.shape
    k = h0["oc"].shape[-1]
    opts = {"dtype": mem0.dtype, "device": mem0.device}
    xt = x.transpose(0, 1).contiguous()
    q_all, _, c_ic_last = torch.lstm(xt, (h0["ic"].unsqueeze(0), c0["ic"].unsqueeze(0)), list(cells["ic"]),
                                     True, 1, 0.0, False, False, False)
    cosine = addressing == "cosine"
    q_steps = q_all.unsqueeze(-1).unbind(0)  # (B, k, 1) per step
    # the attention is kept as (B, l, 1) throughout, so no step needs a squeeze or unsqueeze
    qn = torch.linalg.vector_norm(q_all, dim=-1, keepdim=True).unsqueeze(-1) if cosine else None  # (T, B, 1, 1)
    qn_steps = (qn / strength).unbind(0) if cosine else ()
    eps = torch.full((), 1e-8 / strength, **opts)  # a tensor: no scalar copy per step
    mem_all = torch.empty(t_len + 1, *mem0.shape, **opts)  # M_0 .. M_T
    mem_all[0] = mem0
    mems = mem_all.unbind(0)
    gates = torch.empty(len(CONTROLLERS), t_len, b, 4, k, **opts)
    cs = torch.empty(len(CONTROLLERS), t_len + 1, b, k, **opts)
    h = {"ic": torch.cat([h0["ic"].unsqueeze(0), q_all])}
    for n, c in enumerate(CONTROLLERS):
        cs[n, 0] = c0[c]
        if c != "ic":
            h[c] = torch.empty(t_len + 1, b, k, **opts)
            h[c][0] = h0[c]
    oc = _Cell(cells["oc"], gates[1], cs[1], h["oc"])
    wc = _Cell(cells["wc"], gates[2], cs[2], h["wc"])
    mbars = torch.empty(t_len, b, k, **opts)
    mbar_steps = mbars.unbind(0)
    mem, diffs, zs = mems[0], [], []
    sims: List[torch.Tensor] = []
    dens: List[torch.Tensor] = []
    norms: List[torch.Tensor] = []
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
        m_bar = torch.sum(mem * z, 1, out=mbar_steps[t])  # Eq. 4 (a batched 1 x l matmul is slower here)
        m_write = wc.step(t, oc.step(t, m_bar))  # Eq. 5, 6
        diff = m_write.unsqueeze(1) - mem
        mem = torch.addcmul(mem, z, diff, out=mems[t + 1])  # Eq. 7: (1 - z_i) M_i + z_i m'_t
        diffs.append(diff), zs.append(z)
    inputs = {"ic": xt, "oc": mbars, "wc": h["oc"][1:]}
    return Trace(cells=cells, inputs=inputs, h=h, gates=gates, cs=cs,
                 c_last={"ic": c_ic_last[0], "oc": cs[1, -1].clone(), "wc": cs[2, -1].clone()},  # cs changes later
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
