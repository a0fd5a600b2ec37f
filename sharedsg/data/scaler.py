"""Min-max scaling of (x, y) coordinates to [-0.5, 0.5] (paper Sec. 4.2).

Fitted on the training windows only and saved with the model: ``state_dict()``
holds plain tensors, so it loads with ``torch.load(..., weights_only=True)``.
Held-out windows can fall slightly outside [-0.5, 0.5]; they are not clipped.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from sharedsg.data.errors import DataError


class MinMaxScaler:
    """Per-axis affine map of metres to [-0.5, 0.5]: ``(p - low) / (high - low) - 0.5``."""

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        self.low = np.asarray(low, dtype=np.float64).reshape(2)
        self.high = np.asarray(high, dtype=np.float64).reshape(2)
        if not np.all(self.high > self.low):
            raise DataError(f"cannot scale coordinates: the training windows span {self.low}..{self.high}; need more than one position per axis")

    @classmethod
    def fit(cls, points: np.ndarray) -> "MinMaxScaler":
        """Fit on (..., 2) positions in metres."""
        flat = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(flat) == 0:
            raise DataError("cannot fit the coordinate scaler: there are no training windows; check data.max_train_tracks and data.test_fraction")
        return cls(flat.min(axis=0), flat.max(axis=0))

    def transform(self, points: np.ndarray) -> np.ndarray:
        """Metres -> scaled coordinates (float32)."""
        return ((points - self.low) / (self.high - self.low) - 0.5).astype(np.float32)

    def inverse_transform(self, scaled: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Scaled coordinates -> metres (numpy float64, or a tensor of the input's dtype)."""
        span, low = self.high - self.low, self.low
        if isinstance(scaled, torch.Tensor):
            return ((scaled.double() + 0.5) * torch.from_numpy(span) + torch.from_numpy(low)).to(scaled.dtype)
        return (np.asarray(scaled, dtype=np.float64) + 0.5) * span + low

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {"low": torch.tensor(self.low, dtype=torch.float64), "high": torch.tensor(self.high, dtype=torch.float64)}

    @classmethod
    def from_state_dict(cls, state: Dict[str, torch.Tensor]) -> "MinMaxScaler":
        return cls(state["low"].numpy(), state["high"].numpy())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MinMaxScaler) and np.array_equal(self.low, other.low) and np.array_equal(self.high, other.high)

    def __repr__(self) -> str:
        return f"MinMaxScaler(low={self.low.tolist()}, high={self.high.tolist()})"
