"""Feature extractors f^E (Eq. 1): x_t = f^E(chi_t), applied to every time step."""

from __future__ import annotations

import torch
from torch import nn


class LSTMEncoder(nn.Module):
    """Sec. 4.2: an LSTM with 30 hidden units over the (x, y) frames; x_t is its output at frame t."""

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, batch_first=True)
        self.out_dim = hidden

    def forward(self, chi: torch.Tensor) -> torch.Tensor:
        """chi: (B, T, input_dim) -> (B, T, hidden)."""
        out, _ = self.lstm(chi)
        return out


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

    def forward(self, chi: torch.Tensor) -> torch.Tensor:
        """chi: (B, T, 1, H, W) -> (B, T, out_dim)."""
        b, t = chi.shape[:2]
        feats = self.net(chi.reshape(b * t, *chi.shape[2:]))
        return feats.reshape(b, t, -1)
