"""A supervised LSTM encoder-decoder for trajectories: our stand-in for the trajectory model [50]
of Sec. 4.2, and the network MAML adapts in the trajectory meta-test.

With ``offsets=True`` (MAML's network, ``metatest.maml_offsets``) each future frame is predicted
as an offset from the last observed frame, the form of the NMN's decoder
(``model.predict_offsets``). Without it each step's output is added to the previous position,
so the predicted frames are cumulative sums and the support loss's curvature along the output
layer grows like sum_t t^2 / T: SGD on it is unstable above a rate of ~2e-3 and Adam's
per-parameter steps move the far frames 50x more than the near ones
(docs/results/trajectory_metatest.md, "MAML's network"). With offsets, frame t is
last_observed + f^D(h_t), so every frame depends on the output layer once.
"""

from __future__ import annotations

import torch
from torch import nn


class Seq2Seq(nn.Module):
    """LSTM encoder over the observed frames; an LSTM decoder unrolled for the future frames,
    each step fed the previous prediction (the first step the last observed frame); a dense
    layer gives the displacement from the previous prediction, or with ``offsets`` from the
    last observed frame."""

    def __init__(self, hidden: int, input_dim: int = 2, offsets: bool = False) -> None:
        super().__init__()
        self.offsets = offsets
        self.encoder = nn.LSTM(input_dim, hidden, batch_first=True)
        self.decoder = nn.LSTMCell(input_dim, hidden)
        self.out = nn.Linear(hidden, input_dim)

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """x: (B, T_obs, 2) -> (B, steps, 2)."""
        _, (h, c) = self.encoder(x)
        h, c = h[0], c[0]
        last = x[:, -1]
        prev, outs = last, []
        for _ in range(steps):
            h, c = self.decoder(prev, (h, c))
            prev = (last if self.offsets else prev) + self.out(h)
            outs.append(prev)
        return torch.stack(outs, dim=1)
