"""Feature extractors f^E (Eq. 1): x_t = f^E(chi_t), applied to every time step."""

from __future__ import annotations

import torch
from torch import nn


class LSTMEncoder(nn.Module):
    """Sec. 4.2: an LSTM with 30 hidden units over the observed (x, y) frames.

    ``output='last'`` (default): the LSTM reads the whole observed track and its last
    output is the feature x_t of every predicted step t = 1..steps (the memory module
    then unrolls over the predicted frames, a sequence-to-sequence reading of the
    paper's set-up). ``output='sequence'``: x_t is the output at observed frame t, so
    step t predicts future frame t from the first t observed frames only.
    """

    def __init__(self, input_dim: int, hidden: int, output: str = "last") -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, batch_first=True)
        self.out_dim = hidden
        self.output = output

    def forward(self, chi: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """chi: (B, T_obs, input_dim) -> (B, steps, hidden) (``last``) or (B, T_obs, hidden)."""
        out, _ = self.lstm(chi)
        if self.output == "sequence":
            return out
        return out[:, -1:].expand(-1, steps or out.shape[1], -1)


class ConvEncoder(nn.Module):
    """Sec. 4.1: blocks of 3x3 conv (64 filters), batch norm, ReLU and 2x2 max-pool, then flatten."""

    def __init__(self, channels: int, blocks: int, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, size = 1, image_size
        for _ in range(blocks):
            layers += [
                nn.Conv2d(in_ch, channels, kernel_size=3, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_ch, size = channels, size // 2
        self.net = nn.Sequential(*layers)
        self.out_dim = channels * size * size

    def forward(self, chi: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """chi: (B, T, 1, H, W) -> (B, T, out_dim); one image per step (``steps`` is T)."""
        b, t = chi.shape[:2]
        feats = self.net(chi.reshape(b * t, *chi.shape[2:]))
        return feats.reshape(b, t, -1)
