"""The NMN's recurrent state: the memory M and the (h, c) of each controller.

The NMN takes a state and returns the next one (deepmind/dnc style,
``forward(inputs, prev_state) -> (output, next_state)``); nothing is kept inside the
module. Whoever carries it across batches (``StreamLearner`` with
``model.persist_memory``) keeps the batch mean of a batch's final state, detached,
so no gradient crosses a batch boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch

from sharedsg.model.controllers import CONTROLLERS


@dataclass
class NMNState:
    """``memory``: (B, l, k); ``h``, ``c``: controller -> (B, k). B may be 1 (shared by a batch)."""

    memory: torch.Tensor
    h: Dict[str, torch.Tensor]
    c: Dict[str, torch.Tensor]

    @property
    def batch_size(self) -> int:
        return int(self.memory.shape[0])

    def expand(self, batch_size: int) -> "NMNState":
        """A state of batch size 1 broadcast to ``batch_size`` sequences (contiguous copies)."""
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise ValueError(f"a state of batch size {self.batch_size} cannot start a batch of {batch_size}")

        def grow(t: torch.Tensor) -> torch.Tensor:
            return t.expand(batch_size, *t.shape[1:]).contiguous()

        return NMNState(grow(self.memory), {n: grow(v) for n, v in self.h.items()},
                        {n: grow(v) for n, v in self.c.items()})

    def carried(self) -> "NMNState":
        """The batch mean, detached (batch size 1): what the next batch starts from."""
        def mean(t: torch.Tensor) -> torch.Tensor:
            return t.detach().mean(dim=0, keepdim=True)

        return NMNState(mean(self.memory), {n: mean(v) for n, v in self.h.items()},
                        {n: mean(v) for n, v in self.c.items()})

    def to(self, device: torch.device | str) -> "NMNState":
        return NMNState(self.memory.to(device), {n: v.to(device) for n, v in self.h.items()},
                        {n: v.to(device) for n, v in self.c.items()})

    def tensors(self) -> Dict[str, torch.Tensor]:
        """Flat name -> tensor (checkpoints): memory, ic.h, ic.c, ..."""
        out = {"memory": self.memory}
        for n in CONTROLLERS:
            out[f"{n}.h"], out[f"{n}.c"] = self.h[n], self.c[n]
        return out

    @classmethod
    def from_tensors(cls, flat: Dict[str, torch.Tensor]) -> "NMNState":
        return cls(flat["memory"], {n: flat[f"{n}.h"] for n in CONTROLLERS},
                   {n: flat[f"{n}.c"] for n in CONTROLLERS})
