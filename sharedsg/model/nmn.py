"""The Neural Memory Network: encoder f^E, memory module (IC, OC, WC, memory stack), decoder f^D.

One forward pass over a batch of sequences runs, at every time step t (Fig. 2):

    x_t = f^E(chi_t)                        Eq. 1
    q_t = IC(x_t)                           Eq. 2
    z_t = softmax(q_t^T M_{t-1})            Eq. 3
    m_bar_t = z_t M_{t-1}                   Eq. 4
    m_t = OC(m_bar_t)                       Eq. 5
    m'_t = WC(m_t)                          Eq. 6
    M_t = write(M_{t-1}, z_t, m'_t)         Eq. 7
    y_hat_t = f^D(m_t)                      Eq. 8 (+ the last observed frame with model.predict_offsets)

from the state it is given (memory M_0 and each controller's (h, c); default the initial
state) and returns its final state with the outputs: ``forward(chi, prev_state) ->
(output, next_state)``; the module keeps no state between calls.

``model.impl`` chooses how Eq. 2-7 run: ``reference`` steps the controllers with autograd
recording every step (:meth:`NMN.unroll`, which keeps every controller output h_IC = q_t,
h_OC = m_t, h_WC = m'_t as the very tensors the rest of the graph consumes, so autograd gives
dL/dh_c,t); ``fast`` runs :mod:`sharedsg.model.fused` (the same numbers, a hand-written
backward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig
from torch import nn
from torch.autograd.function import once_differentiable

from sharedsg.model import fused
from sharedsg.model.controllers import CONTROLLERS, Controller
from sharedsg.model.decoders import ClassificationDecoder, RegressionDecoder
from sharedsg.model.encoders import ConvEncoder, LSTMEncoder
from sharedsg.model.memory import MemoryStack, address, address_cosine, read, write
from sharedsg.model.state import NMNState


@dataclass
class NMNOutput:
    y_hat: torch.Tensor  # (B, T, output_dim): coordinates or logits
    h: Dict[str, torch.Tensor]  # controller -> (B, T, k) outputs, in the graph
    z: torch.Tensor  # (B, T, l) attention over the slots


@dataclass
class Unrolled:
    """The reference per-step graph (:meth:`NMN.unroll`): every controller's T outputs, inputs
    (detached) and the (h, c) it started from."""

    h: Dict[str, List[torch.Tensor]]  # controller -> T tensors (B, k), in the graph
    inputs: Dict[str, List[torch.Tensor]]  # controller -> its T inputs x_t, m_bar_t, m_t (detached)
    start: Dict[str, Tuple[torch.Tensor, torch.Tensor]]  # controller -> its (h, c) at the batch start
    z: torch.Tensor  # (B, T, l)


def build_encoder(cfg: DictConfig) -> nn.Module:
    if cfg.encoder == "lstm":
        return LSTMEncoder(cfg.input_dim, cfg.encoder_hidden, cfg.encoder_output)
    return ConvEncoder(cfg.conv_channels, cfg.conv_blocks, cfg.image_size)


def build_decoder(cfg: DictConfig) -> nn.Module:
    if cfg.decoder == "regression":
        return RegressionDecoder(cfg.slot_width, cfg.output_dim, cfg.output_activation)
    return ClassificationDecoder(cfg.slot_width, cfg.output_dim)


class NMN(nn.Module):
    """Encoder + memory module + decoder (Eq. 1-8), built from a ``ModelConfig``."""

    def __init__(self, cfg: DictConfig, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        k = cfg.slot_width
        self.encoder = build_encoder(cfg)
        self.ic = Controller(self.encoder.out_dim, k)
        self.oc = Controller(k, k)
        self.wc = Controller(k, k)
        self.memory = MemoryStack(cfg.slots, k, torch.Generator().manual_seed(seed), learned_init=cfg.memory_init == "learned")
        self.decoder = build_decoder(cfg)
        self.addressing, self.strength = cfg.addressing, float(cfg.address_strength)
        self.offsets = cfg.decoder == "regression" and bool(cfg.predict_offsets)
        self.impl = str(cfg.impl)

    def controller(self, name: str) -> Controller:
        return getattr(self, name)

    # -- state -------------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> NMNState:
        """M_0 (learned or the fixed draw) and zero controller states."""
        starts = {c: self.controller(c).start(batch_size) for c in CONTROLLERS}
        return NMNState(self.memory.start(batch_size), {c: s[0] for c, s in starts.items()},
                        {c: s[1] for c, s in starts.items()})

    def start_state(self, prev_state: Optional[NMNState], batch_size: int) -> NMNState:
        """``prev_state`` broadcast to the batch, or the initial state when None."""
        return self.initial_state(batch_size) if prev_state is None else prev_state.expand(batch_size)

    # -- the pieces of a forward pass ---------------------------------------------------
    def encode(self, chi: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Eq. 1: x (B, T, in)."""
        return self.encoder(chi, steps)

    def decode(self, m: torch.Tensor, chi: torch.Tensor) -> torch.Tensor:
        """Eq. 8 on m (B, T, k); with ``predict_offsets`` relative to the last observed frame."""
        y_hat = self.decoder(m)
        if self.offsets:
            y_hat = y_hat + chi[:, -1:, : y_hat.shape[-1]]
        return y_hat

    def cells(self) -> Dict[str, fused.Cell]:
        return {c: self.controller(c).weights() for c in CONTROLLERS}

    def _address(self, q: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        return address(q, mem) if self.addressing == "dot" else address_cosine(q, mem, self.strength)

    def unroll(self, x: torch.Tensor, state: NMNState) -> Tuple[Unrolled, NMNState]:
        """Eq. 2-7, the reference: one autograd-recorded step at a time."""
        mem = state.memory
        states = {c: (state.h[c], state.c[c]) for c in CONTROLLERS}
        start = {c: (states[c][0].detach(), states[c][1].detach()) for c in CONTROLLERS}
        h: Dict[str, List[torch.Tensor]] = {c: [] for c in CONTROLLERS}
        inputs: Dict[str, List[torch.Tensor]] = {c: [] for c in CONTROLLERS}
        zs = []
        for t in range(x.shape[1]):
            states["ic"] = self.ic(x[:, t], states["ic"])
            q = states["ic"][0]
            z = self._address(q, mem)
            m_bar = read(z, mem)
            states["oc"] = self.oc(m_bar, states["oc"])
            m = states["oc"][0]
            states["wc"] = self.wc(m, states["wc"])
            m_write = states["wc"][0]
            mem = write(mem, z, m_write)
            for c, out_c, in_c in zip(CONTROLLERS, (q, m, m_write), (x[:, t], m_bar, m)):
                h[c].append(out_c)
                inputs[c].append(in_c.detach())
            zs.append(z)
        final = NMNState(mem, {c: s[0] for c, s in states.items()}, {c: s[1] for c, s in states.items()})
        return Unrolled(h=h, inputs=inputs, start=start, z=torch.stack(zs, dim=1)), final

    def forward(self, chi: torch.Tensor, prev_state: Optional[NMNState] = None,
                steps: int | None = None) -> Tuple[NMNOutput, NMNState]:
        """Run the batch for ``steps`` output steps (default: as many as input steps) from
        ``prev_state`` (default the initial state; batch size 1 is broadcast); returns the
        outputs and the final state (in the graph)."""
        x = self.encode(chi, steps)
        state = self.start_state(prev_state, x.shape[0])
        if self.impl == "fast":
            h, z, final = _FusedCore.run(self, x, state)
        else:
            trace, final = self.unroll(x, state)
            h = {c: torch.stack(trace.h[c], dim=1) for c in CONTROLLERS}
            z = trace.z
        return NMNOutput(y_hat=self.decode(h["oc"], chi), h=h, z=z), final


class _FusedCore(torch.autograd.Function):
    """:func:`fused.core_forward` / :func:`fused.core_backward` as one autograd node, so the fast
    NMN's outputs and final state back-propagate like the reference's."""

    @staticmethod
    def run(nmn: NMN, x: torch.Tensor, state: NMNState
            ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor, NMNState]:
        cells = nmn.cells()
        flat = [w for c in CONTROLLERS for w in cells[c]]
        hc = [t for c in CONTROLLERS for t in (state.h[c], state.c[c])]
        outs = _FusedCore.apply((nmn.addressing, nmn.strength), x, state.memory, *hc, *flat)
        h_ic, h_oc, h_wc, z, mem = outs[:5]
        last = outs[5:]
        final = NMNState(mem, {c: last[2 * i] for i, c in enumerate(CONTROLLERS)},
                         {c: last[2 * i + 1] for i, c in enumerate(CONTROLLERS)})
        return {"ic": h_ic, "oc": h_oc, "wc": h_wc}, z, final

    @staticmethod
    def forward(ctx, spec, x, mem0, *rest):
        hc, flat = rest[:6], rest[6:]
        names = CONTROLLERS
        cells = {c: tuple(flat[4 * i:4 * i + 4]) for i, c in enumerate(names)}
        h0 = {c: hc[2 * i] for i, c in enumerate(names)}
        c0 = {c: hc[2 * i + 1] for i, c in enumerate(names)}
        tr = fused.core_forward(x, mem0, h0, c0, cells, spec[0], spec[1])
        ctx.set_materialize_grads(False)
        ctx.trace = tr
        h = [tr.outputs(c).transpose(0, 1) for c in names]
        last = [t for c in names for t in (tr.h[c][-1], tr.c_last[c])]
        return (*h, tr.z.transpose(0, 1), tr.mem[-1], *last)

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_ic, dh_oc, dh_wc, dz, dmem, *dlast):
        tr = ctx.trace
        tm = (lambda g: None if g is None else g.transpose(0, 1))
        grads = fused.core_backward(
            tr, {"ic": tm(dh_ic), "oc": tm(dh_oc), "wc": tm(dh_wc)}, tm(dz), dmem,
            {c: dlast[2 * i] for i, c in enumerate(CONTROLLERS)},
            {c: dlast[2 * i + 1] for i, c in enumerate(CONTROLLERS)})
        hc = [t for c in CONTROLLERS for t in (grads.dh0[c], grads.dc0[c])]
        flat = [t for c in CONTROLLERS for t in grads.params[c]]
        return (None, grads.dx.transpose(0, 1), grads.dmem0, *hc, *flat)
