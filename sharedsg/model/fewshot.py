"""The NMN as a memory-augmented few-shot learner (MANN [13]'s reading of the paper's Sec. 1 and 3).

One episode is one sequence, and B episodes are the batch dimension. The support items
come first, one per time step, each with a one-hot label; the memory and the controller
states persist through the episode and start from their initial values at every episode:

    x_t = [f^E(chi_t), onehot]          Eq. 1, plus the label (``label_input``: the item's own
                                        label, or the previous item's as in MANN); ``ic_input``:
                                        f^E's output as it is (raw), through a LayerNorm
                                        (layernorm), into fan-in-scaled image columns of the
                                        IC's weight_ih (fan_in), or both (layernorm_fan_in)
    q_t = IC(x_t)                       Eq. 2
    z_t = softmax(s * cos(q_t, M_i))    Eq. 3 (content addressing, model.addressing)
    m_bar_t = z_t M_{t-1}               Eq. 4
    m_t = OC(m_bar_t)                   Eq. 5 (``oc_input=read_query``: OC([m_bar_t, q_t]), the
                                        compose step of Neural Semantic Encoders [44])
    m'_t = WC(m_t)                      Eq. 6 (``write_input=mq``: WC([m_t, q_t]); ``q``: m'_t = q_t, the
                                        key itself as MANN writes it, and no WC; neither the paper)
    M_t = write(M_{t-1}, z_t, m'_t)     Eq. 7

Each query then takes one step from the state after the last support item (in parallel,
so no query sees another): IC with the query image and no label (``own``) or the last
support label (``previous``), address and read the memory, OC, and y_hat = f^D(m_t) (Eq. 8).
No write follows a query, so WC acts on the queries only through what the supports wrote.
The queries start from the last support step's h (a consumed output) and its cell state c
(forward only: the gradient stops at c there, a truncation like DNI's at a sequence boundary).

Every controller output is consumed by the rest of the network through ``h_out`` (a
distinct tensor; the controller's own recurrence uses ``h``), so the gradient of the
loss with respect to ``h_out`` is the gradient from the rest of the network, without the
path through the controller's own recurrence: the synthetic-gradient target of Eq. 11 that
Eq. 10 back-propagates through the controller's own unroll without counting it twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from sharedsg.model.controllers import Controller
from sharedsg.model.encoders import ConvEncoder
from sharedsg.model.memory import address, address_cosine, read, write

LSTMState = Tuple[torch.Tensor, torch.Tensor]
Weights = Dict[str, torch.Tensor]  # an LSTMCell's parameters, optionally with a leading batch (episode) dim
FAST_CONTROLLERS = ("ic", "oc")
"""The controllers that act on the queries (WC's writes end with the support part)."""


@dataclass
class SupportPass:
    """What the support part of a batch of episodes leaves: the state the queries start from,
    and per controller its inputs, start state (detached) and outputs (in the graph)."""

    memory: torch.Tensor  # (B, l, k)
    states: Dict[str, LSTMState]  # controller -> (h, c) after the last support item, where the queries start
    inputs: Dict[str, torch.Tensor]  # controller -> (B, S, in), detached
    start: Dict[str, LSTMState]  # controller -> (h, c) at the episode start, detached
    h_out: Dict[str, List[torch.Tensor]]  # controller -> S tensors (B, k): the outputs the rest of the network consumed

    def outputs(self, controller: str) -> torch.Tensor:
        """A controller's support outputs as one detached (B, S, k) tensor (the SG input)."""
        return torch.stack([h.detach() for h in self.h_out[controller]], dim=1)
    last_label: torch.Tensor  # (B, N): the last support item's one-hot label


def cell_weights(controller: Controller) -> Weights:
    """The controller's LSTMCell parameters by name (weight_ih, weight_hh, bias_ih, bias_hh)."""
    return dict(controller.cell.named_parameters())


def lstm_step(w: Weights, x: torch.Tensor, hc: LSTMState) -> LSTMState:
    """The LSTMCell update (gates i, f, g, o as torch.nn.LSTMCell) written out, so that it can run
    with per-episode weights (``w`` with a leading dim B, ``x`` (B, Q, in), ``hc`` (B, Q, k)) and
    under torch.func transforms; shared weights (2-D) take any leading dims."""
    h, c = hc
    if w["weight_ih"].dim() == 3:
        gates = (torch.einsum("bgi,bqi->bqg", w["weight_ih"], x) + torch.einsum("bgh,bqh->bqg", w["weight_hh"], h)
                 + (w["bias_ih"] + w["bias_hh"]).unsqueeze(1))
    else:
        gates = F.linear(x, w["weight_ih"], w["bias_ih"]) + F.linear(h, w["weight_hh"], w["bias_hh"])
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def widen_input(cell: nn.LSTMCell, extra: int) -> None:
    """Append ``extra`` input columns to ``cell``'s weight_ih, drawn as LSTMCell draws its weights
    (U(+-1/sqrt(hidden))) from the global generator; the existing columns are kept."""
    bound = 1.0 / math.sqrt(cell.hidden_size)
    new = torch.empty(cell.weight_ih.shape[0], extra).uniform_(-bound, bound)
    cell.weight_ih = nn.Parameter(torch.cat([cell.weight_ih.detach(), new], dim=1))
    cell.input_size += extra


class FewShotNMN(nn.Module):
    """Encoder, IC/OC/WC controllers, learned initial memory and decoder of one N-way learner."""

    def __init__(self, cfg: DictConfig, ways: int, label_input: str = "own", seed: int = 0,
                 write_input: str = "m", oc_input: str = "read", ic_input: str = "raw") -> None:
        """``write_input``: ``m`` (Eq. 6, WC(m_t)), ``mq`` (WC([m_t, q_t])) or ``q`` (m'_t = q_t, no WC), the
        last two not the paper;
        ``oc_input``: ``read`` (Eq. 5, OC(m_bar_t)) or ``read_query`` (OC([m_bar_t, q_t]));
        ``ic_input``: ``raw``, ``layernorm``, ``fan_in`` or ``layernorm_fan_in`` (module docstring). Every weight the
        options share is the same draw for a given ``seed`` whatever they are (paired comparisons):
        fan_in rescales the drawn image columns, read_query draws OC's q columns after the rest."""
        super().__init__()
        torch.manual_seed(seed)
        k = int(cfg.slot_width)
        self.ways, self.label_input, self.write_input, self.oc_input = ways, label_input, write_input, oc_input
        self.encoder = ConvEncoder(cfg.conv_channels, cfg.conv_blocks, cfg.image_size)
        d = self.encoder.out_dim
        self.feature_norm: Optional[nn.LayerNorm] = nn.LayerNorm(d) if ic_input.startswith("layernorm") else None
        self.ic = Controller(d + ways, k)
        if ic_input.endswith("fan_in"):  # U(+-1/sqrt(k)) -> U(+-1/sqrt(d)) on the image columns
            with torch.no_grad():
                self.ic.cell.weight_ih[:, :d] *= math.sqrt(k / d)
        self.oc = Controller(k, k)
        wc = Controller(2 * k if write_input == "mq" else k, k)  # drawn in every form: the draws after it are paired
        self.wc: Optional[Controller] = None if write_input == "q" else wc
        self.controllers = ("ic", "oc") if self.wc is None else ("ic", "oc", "wc")
        self.memory_init = nn.Parameter(torch.randn(int(cfg.slots), k) / math.sqrt(k))
        self.decoder = nn.Linear(k, ways)
        if oc_input == "read_query":
            widen_input(self.oc.cell, k)
        self.addressing, self.strength = str(cfg.addressing), float(cfg.address_strength)

    def controller(self, name: str) -> Controller:
        return getattr(self, name)

    def _address(self, q: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return address(q, memory) if self.addressing == "dot" else address_cosine(q, memory, self.strength)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, H, W) -> (B, T, D): f^E of every item (Eq. 1), through the LayerNorm with
        ``ic_input=layernorm*``."""
        return self.features(self.encoder(images))

    def features(self, feats: torch.Tensor) -> torch.Tensor:
        """f^E's output (..., D) as the IC takes it: through the LayerNorm with ``ic_input=layernorm*``."""
        return feats if self.feature_norm is None else self.feature_norm(feats)

    def compose(self, m_bar: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """OC's input: m_bar_t (Eq. 5), or [m_bar_t, q_t] with ``oc_input=read_query``."""
        return m_bar if self.oc_input == "read" else torch.cat([m_bar, q], dim=-1)

    def support_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, S) int labels -> (B, S, N) the one-hot label each support item enters with."""
        onehot = F.one_hot(labels, self.ways).float()
        if self.label_input == "previous":
            onehot = torch.cat([torch.zeros_like(onehot[:, :1]), onehot[:, :-1]], dim=1)
        return onehot

    def support(self, feats: torch.Tensor, labels: torch.Tensor,
                weights: Optional[Dict[str, Weights]] = None) -> SupportPass:
        """Run the support items (B, S, D) with labels (B, S) through Eq. 2-7, one step each;
        ``weights``: per-episode controller weights (leading dim B; the fast weights of Eq. 10) for
        the controllers they name, the module's own weights for the others."""
        b, s_len = feats.shape[:2]
        k = self.memory_init.shape[1]
        label_in = self.support_labels(labels)
        memory = self.memory_init.unsqueeze(0).expand(b, -1, -1)
        zeros = feats.new_zeros(b, k)
        states = {c: (zeros, zeros) for c in self.controllers}
        start = {c: (zeros, zeros) for c in states}
        inputs: Dict[str, List[torch.Tensor]] = {c: [] for c in states}
        outs: Dict[str, List[torch.Tensor]] = {c: [] for c in states}
        for t in range(s_len):
            inp = torch.cat([feats[:, t], label_in[:, t]], dim=-1)
            for c in self.controllers:
                states[c] = self._support_step(c, inp, states[c], weights)
                h_out = states[c][0].view_as(states[c][0])  # what the rest of the network consumes
                inputs[c].append(inp.detach())
                outs[c].append(h_out)
                if c == "ic":
                    z = self._address(h_out, memory)
                    inp = self.compose(read(z, memory), h_out)  # OC's input
                elif c == "oc" and self.wc is None:
                    memory = write(memory, z, outs["ic"][-1])  # write_input=q: the key is written (MANN)
                elif c == "oc":
                    inp = h_out if self.write_input == "m" else torch.cat([h_out, outs["ic"][-1]], dim=-1)  # WC's input
                else:
                    memory = write(memory, z, h_out)
        # the queries continue from the last support step: h as a consumed output (its gradient is in the
        # SG target of that step), the cell state c forward only (its gradient stops at the support/query
        # boundary, so that Eq. 10 with an oracle SG is exactly the support part's true-gradient step)
        final = {c: (outs[c][-1], states[c][1].detach()) for c in states}
        return SupportPass(memory=memory, states=final,
                           inputs={c: torch.stack(v, 1) for c, v in inputs.items()},
                           start=start, h_out=outs,
                           last_label=F.one_hot(labels[:, -1], self.ways).float())

    def support_logits(self, sp: SupportPass) -> torch.Tensor:
        """Eq. 8 at every support step, y_hat_t = f^D(m_t) from the OC's outputs: (B, S, N), the
        predictions of MANN's per-step loss (``fewshot.step_loss``)."""
        return self.decoder(torch.stack(sp.h_out["oc"], dim=1))

    def _support_step(self, name: str, inp: torch.Tensor, hc: LSTMState,
                      weights: Optional[Dict[str, Weights]]) -> LSTMState:
        """One support step of controller ``name`` for (B, in) inputs, with its per-episode weights if given."""
        if not weights or name not in weights:
            return lstm_step(cell_weights(self.controller(name)), inp, hc)
        h, c = lstm_step(weights[name], inp.unsqueeze(1), (hc[0].unsqueeze(1), hc[1].unsqueeze(1)))
        return h.squeeze(1), c.squeeze(1)

    def _step(self, name: str, inp: torch.Tensor, hc: LSTMState, weights: Optional[Weights]) -> LSTMState:
        """One step of controller ``name`` for (B, Q, in) inputs from the (B, k) state; with per-episode
        ``weights`` (leading dim B), each episode's queries use its own weights."""
        q = inp.shape[1]
        start = (hc[0].unsqueeze(1).expand(-1, q, -1), hc[1].unsqueeze(1).expand(-1, q, -1))
        return lstm_step(weights if weights is not None else cell_weights(self.controller(name)), inp, start)

    def queries(self, state: SupportPass, feats: torch.Tensor,
                weights: Optional[Dict[str, Weights]] = None) -> torch.Tensor:
        """Logits (B, Q, N) of the queries (B, Q, D), each one step from the support's final state;
        ``weights``: per-episode controller weights (the fast weights of Eq. 10) for IC and OC."""
        weights = weights or {}
        q_len = feats.shape[1]
        if self.label_input == "previous":
            label = state.last_label.unsqueeze(1).expand(-1, q_len, -1)
        else:
            label = feats.new_zeros(feats.shape[0], q_len, self.ways)
        q = self._step("ic", torch.cat([feats, label], dim=-1), state.states["ic"], weights.get("ic"))[0]
        b, k = q.shape[0], q.shape[-1]
        memory = state.memory.repeat_interleave(q_len, dim=0)  # (B * Q, l, k): each query reads its episode's memory
        flat = q.reshape(b * q_len, k)
        m_bar = read(self._address(flat, memory), memory).reshape(b, q_len, k)  # Eq. 3-4 for every query
        m = self._step("oc", self.compose(m_bar, q), state.states["oc"], weights.get("oc"))[0]
        return self.decoder(m)

    def forward(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                weights: Optional[Dict[str, Weights]] = None) -> torch.Tensor:
        """Query logits (B, Q, N) of B episodes: support (B, S, 1, H, W), (B, S); queries (B, Q, 1, H, W)."""
        s_len = support_x.shape[1]
        feats = self.encode(torch.cat([support_x, query_x], dim=1))
        return self.queries(self.support(feats[:, :s_len], support_y), feats[:, s_len:], weights)
