"""A supervised LSTM encoder-decoder for trajectories: our stand-in for the trajectory model [50]
of Sec. 4.2, and the network MAML adapts in the trajectory meta-test."""

from __future__ import annotations

import torch
from torch import nn


class Seq2Seq(nn.Module):
    """LSTM encoder over the observed frames; an LSTM decoder unrolled for the future frames,
    each step fed the previous position (the first step the last observed frame); a dense
    layer gives the displacement from the previous position."""

    def __init__(self, hidden: int, input_dim: int = 2) -> None:
        super().__init__()
        self.encoder = nn.LSTM(input_dim, hidden, batch_first=True)
        self.decoder = nn.LSTMCell(input_dim, hidden)
        self.out = nn.Linear(hidden, input_dim)

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """x: (B, T_obs, 2) -> (B, steps, 2)."""
        _, (h, c) = self.encoder(x)
        h, c = h[0], c[0]
        prev = x[:, -1]
        outs = []
        for _ in range(steps):
            h, c = self.decoder(prev, (h, c))
            prev = prev + self.out(h)
            outs.append(prev)
        return torch.stack(outs, dim=1)
