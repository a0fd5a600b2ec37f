"""Decoders f^D (Eq. 8): y_hat_t = f^D(m_t)."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"linear": nn.Identity, "tanh": nn.Tanh, "relu": nn.ReLU}


class RegressionDecoder(nn.Module):
    """Sec. 4.2: a dense layer with ``out_dim`` (2) units.

    The paper puts a ReLU on it, which cannot output the negative half of coordinates
    scaled to [-0.5, 0.5]; ``activation`` chooses (``linear`` by default, ``relu`` for
    the paper's literal choice, ``tanh`` for a bounded output).
    """

    def __init__(self, in_dim: int, out_dim: int, activation: str) -> None:
        super().__init__()
        self.dense = nn.Linear(in_dim, out_dim)
        self.act = ACTIVATIONS[activation]()

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(m))


class ClassificationDecoder(nn.Module):
    """Sec. 4.1: a dense layer with softmax; returns logits (the softmax lives in the loss)."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_dim, num_classes)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.dense(m)
