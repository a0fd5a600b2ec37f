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

and keeps every controller output h_IC = q_t, h_OC = m_t, h_WC = m'_t as the very
tensors the rest of the graph consumes, so that autograd can give dL/dh_c,t and a
synthetic gradient can be pushed back through each controller (Eq. 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from omegaconf import DictConfig
from torch import nn

from sharedsg.model.controllers import CONTROLLERS, Controller
from sharedsg.model.decoders import ClassificationDecoder, RegressionDecoder
from sharedsg.model.encoders import ConvEncoder, LSTMEncoder
from sharedsg.model.memory import MemoryStack, address, address_cosine, read, write


@dataclass
class NMNOutput:
    y_hat: torch.Tensor  # (B, T, output_dim): coordinates or logits
    h: Dict[str, List[torch.Tensor]]  # controller -> T tensors (B, k), in the graph
    z: torch.Tensor  # (B, T, l) attention over the slots
    inputs: Dict[str, List[torch.Tensor]]  # controller -> its T inputs x_t, m_bar_t, m_t (detached)
    start: Dict[str, Tuple[torch.Tensor, torch.Tensor]]  # controller -> its (h, c) at the batch start

    def stacked(self, controller: str) -> torch.Tensor:
        """Controller outputs as one detached (B, T, k) tensor (the SG input)."""
        return torch.stack([h.detach() for h in self.h[controller]], dim=1)


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
        self.persist = bool(cfg.persist_memory)
        self.addressing, self.strength = cfg.addressing, float(cfg.address_strength)
        self.offsets = cfg.decoder == "regression" and bool(cfg.predict_offsets)

    def controller(self, name: str) -> Controller:
        return getattr(self, name)

    def forward(self, chi: torch.Tensor, carry: bool = True, steps: int | None = None) -> NMNOutput:
        """Run the batch for ``steps`` output steps (default: as many as input steps);
        with ``carry`` (and ``persist_memory``) its final states carry to the next batch."""
        x = self.encoder(chi, steps)
        b, t_len = x.shape[:2]
        mem = self.memory.start(b)
        states = {c: self.controller(c).start(b) for c in CONTROLLERS}
        start = {c: (states[c][0].detach(), states[c][1].detach()) for c in CONTROLLERS}
        h: Dict[str, List[torch.Tensor]] = {c: [] for c in CONTROLLERS}
        inputs: Dict[str, List[torch.Tensor]] = {c: [] for c in CONTROLLERS}
        zs, outs = [], []
        for t in range(t_len):
            states["ic"] = self.ic(x[:, t], states["ic"])
            q = states["ic"][0]
            z = address(q, mem) if self.addressing == "dot" else address_cosine(q, mem, self.strength)
            m_bar = read(z, mem)
            states["oc"] = self.oc(m_bar, states["oc"])
            m = states["oc"][0]
            states["wc"] = self.wc(m, states["wc"])
            m_write = states["wc"][0]
            mem = write(mem, z, m_write)
            outs.append(self.decoder(m))
            for c, out_c, in_c in zip(CONTROLLERS, (q, m, m_write), (x[:, t], m_bar, m)):
                h[c].append(out_c)
                inputs[c].append(in_c.detach())
            zs.append(z)
        if carry and self.persist:
            self.memory.carry(mem)
            for c in CONTROLLERS:
                self.controller(c).carry(states[c])
        y_hat = torch.stack(outs, dim=1)
        if self.offsets:  # predicted frames relative to the last observed one
            y_hat = y_hat + chi[:, -1:, : y_hat.shape[-1]]
        return NMNOutput(y_hat=y_hat, h=h, z=torch.stack(zs, dim=1), inputs=inputs, start=start)

    def reset_state(self) -> None:
        """Forget the memory content and controller states (back to their initial values)."""
        self.memory.reset()
        for c in CONTROLLERS:
            self.controller(c).reset()

    def controller_parameters(self, name: str) -> List[nn.Parameter]:
        return list(self.controller(name).parameters())
