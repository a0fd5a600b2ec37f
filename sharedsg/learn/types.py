"""What a stream sends to its SG owner and what the owner sends back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from sharedsg.model.state import NMNState


def _to_wire(t: torch.Tensor) -> Any:
    """A CPU tensor as a numpy array: pickle protocol 5 (Ray's) sends its buffer out of band,
    without the per-tensor ``torch.save`` framing of a pickled tensor (~30x faster here)."""
    if t.device.type != "cpu":
        return t
    try:
        return t.detach().numpy()
    except TypeError:  # a dtype numpy lacks (bfloat16): pickled as a tensor
        return t


def _from_wire(a: Any) -> torch.Tensor:
    """Back to a tensor that owns writable memory (Ray hands out read-only zero-copy buffers)."""
    return torch.from_numpy(np.array(a)) if isinstance(a, np.ndarray) else a


def _state_from_wire(version: int, weights: Dict[str, Any]) -> "SGState":
    return SGState(version, {k: _from_wire(v) for k, v in weights.items()})


@dataclass
class SGTargets:
    """One step's training data for the SG predictors, as CPU tensors (docs/design.md, "One training
    step of a stream", step 6).

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

    @property
    def batch_size(self) -> int:
        return int(self.y.shape[0])

    def parts(self) -> Tuple[Any, ...]:
        """``(controller names, *h, y, *g)``: as separate arguments of a Ray call, each part under
        Ray's inline limit (100 KB) travels with the call instead of through the object store."""
        names = tuple(self.h)
        return (names, *(_to_wire(self.h[c]) for c in names), _to_wire(self.y), *(_to_wire(self.g[c]) for c in names))

    @classmethod
    def from_parts(cls, names: Tuple[str, ...], *arrays: Any) -> "SGTargets":
        n = len(names)
        return cls(dict(zip(names, map(_from_wire, arrays[:n]))), _from_wire(arrays[n]),
                   dict(zip(names, map(_from_wire, arrays[n + 1:]))))

    def float32(self) -> "SGTargets":
        """These targets in float32, the dtype the SG modules train in (a stream may send them
        narrower: ``sg.wire_dtype=float16``); itself when nothing is narrower."""
        def up(v: torch.Tensor) -> torch.Tensor:
            return v.float() if v.dtype == torch.float16 else v

        if all(v.dtype != torch.float16 for v in (self.y, *self.h.values(), *self.g.values())):
            return self
        return SGTargets({c: up(v) for c, v in self.h.items()}, up(self.y), {c: up(v) for c, v in self.g.items()})

    def __reduce__(self):
        return type(self).from_parts, self.parts()


@dataclass
class SGState:
    """A versioned copy of a sharing group's SG weights (CPU tensors)."""

    version: int
    weights: Dict[str, torch.Tensor]

    def __reduce__(self):
        return _state_from_wire, (self.version, {k: _to_wire(v) for k, v in self.weights.items()})


@dataclass
class StepResult:
    """One step's SG targets and metrics; ``next_state``: with ``model.persist_memory``, the NMN
    state the next batch starts from (the batch mean of this batch's final state, detached)."""

    targets: SGTargets
    metrics: Dict[str, float] = field(default_factory=dict)
    next_state: Optional[NMNState] = None
