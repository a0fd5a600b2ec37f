"""The unit of data every learner consumes: a batch of input sequences and their targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import torch


@dataclass
class Batch:
    """``x``: inputs chi_t of shape (B, T, ...); ``y``: targets per time step.

    Trajectories: ``x`` (B, obs_len, 2) observed frames, ``y`` (B, pred_len, 2) future frames
    (obs_len == pred_len; step t of the NMN predicts future frame t).
    Images: ``x`` (B, T, 1, 28, 28), ``y`` (B, T) int64 class labels.
    """

    x: torch.Tensor
    y: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.x.to(device), self.y.to(device))

    def __len__(self) -> int:
        return int(self.x.shape[0])


class BatchSource(Protocol):
    """A stream's data: training batches on demand and a fixed held-out evaluation set."""

    def next_batch(self, batch_size: int) -> Batch:
        """The next training batch (random, reproducible from the source's seed)."""

    def eval_batches(self, batch_size: int, max_batches: int) -> Iterator[Batch]:
        """Deterministic held-out batches (the same on every call)."""
