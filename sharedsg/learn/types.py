"""What a stream sends to its SG owner and what the owner sends back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import torch


@dataclass
class SGTargets:
    """One step's training data for the SG predictors (DESIGN.md step 5), as CPU tensors.

    ``h``: controller -> (B, T, k) outputs; ``y``: (B, T, d) encoded ground truth;
    ``g``: controller -> (B, T, k) true gradients of the per-sample loss w.r.t. h.
    """

    h: Dict[str, torch.Tensor]
    y: torch.Tensor
    g: Dict[str, torch.Tensor]

    def to(self, device: torch.device | str) -> "SGTargets":
        return SGTargets(
            {c: v.to(device) for c, v in self.h.items()},
            self.y.to(device),
            {c: v.to(device) for c, v in self.g.items()},
        )


@dataclass
class SGState:
    """A versioned copy of a sharing group's SG weights (CPU tensors)."""

    version: int
    weights: Dict[str, torch.Tensor]


@dataclass
class StepResult:
    targets: SGTargets
    metrics: Dict[str, float] = field(default_factory=dict)
