"""MANN (Santoro et al. 2016, ref. [13]): an LSTM controller with an external memory written by
least-recently-used access (LRUA), the memory-augmented baseline of Table 1.

At every step t of an episode (the support items, then each query in parallel from the state
after the supports), with input [x_t, y_{t-1}] (the image's pixels and the previous item's
one-hot label, their protocol):

    h_t = LSTM([x_t, y_{t-1}], h_{t-1})                       controller
    k_t, a_t = tanh(W_k h_t), tanh(W_a h_t)                   key and add vector, one per head
    w^w_t = sigmoid(alpha) w^r_{t-1} + (1 - sigmoid(alpha)) w^lu_{t-1}
    M_t = M_{t-1} * (1 - w^lu_{t-1}) + w^w_t a_t^T            (least-used slot cleared, then written)
    w^r_t = softmax(cos(k_t, M_t,i))                          read weights
    r_t = w^r_t M_t
    w^u_t = gamma w^u_{t-1} + w^r_t + w^w_t                   usage
    w^lu_t: 1 on the ``reads`` least-used slots
    y_hat_t = W_o [h_t, r_t]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F

GAMMA = 0.95  # usage decay (Santoro et al.)


@dataclass
class MannState:
    h: torch.Tensor  # (B, H)
    c: torch.Tensor  # (B, H)
    memory: torch.Tensor  # (B, slots, width)
    read_w: torch.Tensor  # (B, heads, slots)
    usage: torch.Tensor  # (B, slots)
    least_used: torch.Tensor  # (B, slots), 1 on the least-used slots

    def repeat(self, n: int) -> "MannState":
        """Each episode's state repeated n times (B * n rows), for n parallel query steps."""
        return MannState(*(t.repeat_interleave(n, dim=0) for t in (self.h, self.c, self.memory, self.read_w,
                                                                     self.usage, self.least_used)))


def least_used(usage: torch.Tensor, n: int) -> torch.Tensor:
    """w^lu: 1 on the n slots of lowest usage, 0 elsewhere. usage (B, slots) -> (B, slots)."""
    idx = torch.topk(usage, n, dim=-1, largest=False).indices
    return torch.zeros_like(usage).scatter(-1, idx, 1.0)


class Mann(nn.Module):
    """LSTM controller + LRUA memory of ``slots`` x ``width`` with ``reads`` heads; N-way output."""

    def __init__(self, input_dim: int, ways: int, hidden: int, slots: int, width: int, reads: int) -> None:
        super().__init__()
        self.ways, self.slots, self.width, self.reads = ways, slots, width, reads
        self.controller = nn.LSTMCell(input_dim + ways, hidden)
        self.key = nn.Linear(hidden, reads * width)
        self.add = nn.Linear(hidden, reads * width)
        self.alpha = nn.Linear(hidden, reads)
        self.out = nn.Linear(hidden + reads * width, ways)

    def start(self, batch: int, like: torch.Tensor) -> MannState:
        z = like.new_zeros
        usage = z(batch, self.slots)
        memory = torch.full((batch, self.slots, self.width), 1e-6, dtype=like.dtype, device=like.device)
        return MannState(z(batch, self.controller.hidden_size), z(batch, self.controller.hidden_size), memory,
                         z(batch, self.reads, self.slots), usage, least_used(usage, self.reads))

    def step(self, x: torch.Tensor, prev_label: torch.Tensor, s: MannState) -> Tuple[torch.Tensor, MannState]:
        """One step for (B, D) inputs and (B, N) previous labels -> (logits (B, N), new state)."""
        b = x.shape[0]
        h, c = self.controller(torch.cat([x, prev_label], dim=-1), (s.h, s.c))
        keys = torch.tanh(self.key(h)).view(b, self.reads, self.width)
        adds = torch.tanh(self.add(h)).view(b, self.reads, self.width)
        gate = torch.sigmoid(self.alpha(h)).unsqueeze(-1)  # (B, heads, 1)
        write_w = gate * s.read_w + (1 - gate) * s.least_used.unsqueeze(1)  # (B, heads, slots)
        memory = s.memory * (1 - s.least_used).unsqueeze(-1) + torch.einsum("bhs,bhw->bsw", write_w, adds)
        sim = F.cosine_similarity(keys.unsqueeze(2), memory.unsqueeze(1), dim=-1, eps=1e-8)  # (B, heads, slots)
        read_w = torch.softmax(sim, dim=-1)
        reads = torch.einsum("bhs,bsw->bhw", read_w, memory).reshape(b, -1)
        usage = GAMMA * s.usage + read_w.sum(1) + write_w.sum(1)
        state = MannState(h, c, memory, read_w, usage, least_used(usage, self.reads))
        return self.out(torch.cat([h, reads], dim=-1)), state

    def forward(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        """Query logits (B, Q, N): support (B, S, D) with labels (B, S), then each query (B, Q, D) one step
        from the state after the supports, with the last support's label as its previous label."""
        b, s_len = support_y.shape
        onehot = F.one_hot(support_y, self.ways).to(support_x.dtype)
        state = self.start(b, support_x)
        prev = torch.zeros_like(onehot[:, 0])
        for t in range(s_len):
            _, state = self.step(support_x[:, t], prev, state)
            prev = onehot[:, t]
        q = query_x.shape[1]
        logits, _ = self.step(query_x.reshape(b * q, -1), prev.repeat_interleave(q, dim=0), state.repeat(q))
        return logits.view(b, q, -1)
