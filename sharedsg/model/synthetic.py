"""Synthetic-gradient predictors SG^IC, SG^OC, SG^WC (Eq. 9) and their loss (Eq. 11).

Each predictor maps a controller output h_t and the ground truth y_t (cDNI-style
conditioning: the input is their concatenation, Sec. 4.1) to an estimate of
dL/dh_t. The last layer is zero-initialised, so the first synthetic gradient is
zero and an untrained SG cannot push a controller anywhere (koz4k/dni-pytorch).
"""

from __future__ import annotations

from typing import Dict

import torch
from omegaconf import DictConfig
from torch import nn

from sharedsg.model.controllers import CONTROLLERS


class SGPredictor(nn.Module):
    """One controller's gradient predictor: (h, y) (B, T, k + d) -> dL/dh estimate (B, T, k).

    ``kind='lstm'`` (the paper) runs an LSTM over the time steps of the batch, from a
    zero state every batch; ``kind='mlp'`` predicts every step independently.
    """

    def __init__(self, out_dim: int, target_dim: int, hidden: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        in_dim = out_dim + target_dim
        if kind == "lstm":
            self.body = nn.LSTM(in_dim, hidden, batch_first=True)
        else:
            self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, out_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq. 9: dL/dh_t ~ SG(h_t, y_t)."""
        inp = torch.cat([h, y], dim=-1)
        feats = self.body(inp)[0] if self.kind == "lstm" else self.body(inp)
        return self.head(feats)


class SGModules(nn.Module):
    """The three predictors of one sharing group, keyed by the paper's controller names."""

    def __init__(self, controller_dims: Dict[str, int], target_dim: int, hidden: int, kind: str) -> None:
        super().__init__()
        self.controller_dims = dict(controller_dims)
        self.target_dim = target_dim
        self.predictors = nn.ModuleDict(
            {c: SGPredictor(controller_dims[c], target_dim, hidden, kind) for c in CONTROLLERS}
        )

    def forward(self, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {c: self.predictors[c](h[c], y) for c in CONTROLLERS}


def sg_loss(predicted: torch.Tensor, true_grad: torch.Tensor) -> torch.Tensor:
    """Eq. 11: L^SG = ||SG(h, y) - dL/dh||^2, averaged over batch, steps and units."""
    return torch.mean((predicted - true_grad) ** 2)


def build_sg_modules(model: DictConfig, sg: DictConfig, target_dim: int) -> SGModules:
    """One group's predictors for an NMN built from ``model`` (every controller is k = slot_width wide)."""
    dims = {c: int(model.slot_width) for c in CONTROLLERS}
    return SGModules(dims, target_dim, sg.hidden, sg.kind)
