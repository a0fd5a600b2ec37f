"""The memory controllers, each an LSTM whose state persists across batches like the memory.

- input controller  (Eq. 2): q_t  = f_r^LSTM(x_t)
- output controller (Eq. 5): m_t  = f_o^LSTM(m_bar_t)
- write controller  (Eq. 6): m'_t = f_w^LSTM(m_t)
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from sharedsg.model.state import CarriedState

LSTMState = Tuple[torch.Tensor, torch.Tensor]


class Controller(nn.Module):
    """One LSTM controller stepped one time step at a time, with a carried (h, c) state."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(input_size, hidden_size)
        zeros = torch.zeros(hidden_size)
        self.state = CarriedState({"h": zeros, "c": zeros})

    def start(self, batch_size: int) -> LSTMState:
        s = self.state.start(batch_size)
        return s["h"], s["c"]

    def forward(self, inp: torch.Tensor, hc: LSTMState) -> LSTMState:
        """One step: returns (h_t, c_t); h_t is the controller output."""
        return self.cell(inp, hc)

    def unroll(self, inputs: List[torch.Tensor], start: LSTMState) -> List[torch.Tensor]:
        """Outputs h_t of the controller run alone over ``inputs`` from ``start``.

        With detached inputs and start state this is the controller's own computation graph
        (its LSTM across the time steps, nothing upstream of it): the path the fast update of
        Eq. 10 pushes a synthetic gradient through.
        """
        hc, outs = start, []
        for inp in inputs:
            hc = self.cell(inp, hc)
            outs.append(hc[0])
        return outs

    def carry(self, hc: LSTMState) -> None:
        self.state.carry({"h": hc[0], "c": hc[1]})

    def reset(self) -> None:
        self.state.reset()


CONTROLLERS = ("ic", "oc", "wc")
"""The paper's names: input, output and write controller."""
