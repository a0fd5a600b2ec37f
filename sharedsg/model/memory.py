"""The memory stack M in R^{l x k}: addressing (Eq. 3), read (Eq. 4) and write (Eq. 7).

The maths are pure functions on batched tensors (B, l, k); :class:`MemoryStack`
only owns the initial content.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def address(q: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """Eq. 3: z_t = softmax(q_t^T M_{t-1}) -- one attention weight per slot.

    q: (B, k); memory: (B, l, k) -> z: (B, l).
    """
    return torch.softmax(torch.einsum("bk,blk->bl", q, memory), dim=-1)


def address_cosine(q: torch.Tensor, memory: torch.Tensor, strength: float) -> torch.Tensor:
    """Content addressing by cosine similarity with a key strength (NTM/DNC), an alternative
    to Eq. 3 that does not depend on the magnitudes of q_t and of the slots:
    z_t = softmax(strength * cos(q_t, M_{t-1,i})).
    """
    sim = torch.einsum("bk,blk->bl", q, memory) / (
        q.norm(dim=-1, keepdim=True) * memory.norm(dim=-1) + 1e-8
    )
    return torch.softmax(strength * sim, dim=-1)


def read(z: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """Eq. 4: m_bar_t = z_t [M_{t-1}]^T -- the attention-weighted mix of the slots.

    z: (B, l); memory: (B, l, k) -> (B, k).
    """
    return torch.einsum("bl,blk->bk", z, memory)


def write(memory: torch.Tensor, z: torch.Tensor, m_write: torch.Tensor) -> torch.Tensor:
    """Eq. 7: M_t = M_{t-1} (I - z_t (x) e_k)^T + (m'_t (x) e_l)(z_t (x) e_k)^T.

    Slot i becomes the convex mix (1 - z_i) M_i + z_i m'_t.
    memory: (B, l, k); z: (B, l); m_write: (B, k) -> (B, l, k).
    """
    zi = z.unsqueeze(-1)
    return memory * (1.0 - zi) + zi * m_write.unsqueeze(1)


def attention_entropy(z: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the attention vectors z (..., l); log(l) is uniform attention."""
    return -(z * torch.log(z.clamp_min(1e-12))).sum(dim=-1).mean()


class MemoryStack(nn.Module):
    """l slots of width k and their initial content M_0; the content a batch ends with is
    returned in the NMN's state, not kept here.

    The initial content is a fixed random draw (scale 1/sqrt(k)), or with ``learned_init`` a
    parameter starting from that draw: an all-zero memory would give uniform attention and
    identical writes to every slot forever.
    """

    def __init__(self, slots: int, width: int, generator: torch.Generator | None = None,
                 learned_init: bool = False) -> None:
        super().__init__()
        self.slots, self.width = slots, width
        init = torch.randn(slots, width, generator=generator) / math.sqrt(width)
        if learned_init:
            self.init = nn.Parameter(init)
        else:
            self.register_buffer("init", init)
        self.learned = learned_init

    def start(self, batch_size: int) -> torch.Tensor:
        """M_0 broadcast to a batch: (B, l, k)."""
        return self.init.unsqueeze(0).expand(batch_size, -1, -1)
