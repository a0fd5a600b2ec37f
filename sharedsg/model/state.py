"""Recurrent state carried across batches.

The NMN models relations *between* samples, so its memory and its controllers'
LSTM states outlive a batch: a batch starts from the carried state (broadcast to
the batch) and, when it ends, the batch mean of its final state is carried on,
detached, so no gradient crosses a batch boundary.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn


class CarriedState(nn.Module):
    """Named tensors (one per state part, without the batch dimension) carried across batches.

    ``initial`` holds the state a :meth:`reset` returns to; ``current`` the carried state.
    Both are buffers, so they move with ``.to(device)`` and are saved in ``state_dict``.
    """

    def __init__(self, initial: Dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.names = tuple(initial)
        for name, value in initial.items():
            self.register_buffer(f"initial_{name}", value.clone())
            self.register_buffer(f"current_{name}", value.clone())

    def start(self, batch_size: int) -> Dict[str, torch.Tensor]:
        """The carried state broadcast to a batch: {name: (B, *shape)}."""
        return {
            n: getattr(self, f"current_{n}").unsqueeze(0).expand(batch_size, *getattr(self, f"current_{n}").shape).contiguous()
            for n in self.names
        }

    @torch.no_grad()
    def carry(self, final: Dict[str, torch.Tensor]) -> None:
        """Carry the batch mean of a batch's final state to the next batch, detached."""
        for n in self.names:
            getattr(self, f"current_{n}").copy_(final[n].detach().mean(dim=0))

    @torch.no_grad()
    def reset(self) -> None:
        for n in self.names:
            getattr(self, f"current_{n}").copy_(getattr(self, f"initial_{n}"))
