"""The memory controllers, each an LSTM cell stepped one time step at a time.

- input controller  (Eq. 2): q_t  = f_r^LSTM(x_t)
- output controller (Eq. 5): m_t  = f_o^LSTM(m_bar_t)
- write controller  (Eq. 6): m'_t = f_w^LSTM(m_t)

A controller holds only its weights; its (h, c) state is passed in and returned
(it is part of :class:`sharedsg.model.state.NMNState`).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

LSTMState = Tuple[torch.Tensor, torch.Tensor]

CONTROLLERS = ("ic", "oc", "wc")
"""The paper's names: input, output and write controller."""


class Controller(nn.Module):
    """One LSTM controller: ``forward(input, (h, c)) -> (h_t, c_t)``; h_t is its output."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(input_size, hidden_size)

    def start(self, batch_size: int) -> LSTMState:
        """The initial state: zeros (B, hidden)."""
        w = self.cell.weight_hh
        zeros = torch.zeros(batch_size, self.cell.hidden_size, dtype=w.dtype, device=w.device)
        return zeros, zeros.clone()

    def forward(self, inp: torch.Tensor, hc: LSTMState) -> LSTMState:
        """One step: returns (h_t, c_t)."""
        return self.cell(inp, hc)

    def weights(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weight_ih, weight_hh, bias_ih, bias_hh), in ``torch.lstm``'s order."""
        c = self.cell
        return c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh

    def unroll(self, inputs: List[torch.Tensor], start: LSTMState) -> List[torch.Tensor]:
        """Outputs h_t of the controller run alone over ``inputs`` from ``start``.

        With detached inputs and start state this is the controller's own computation graph
        (its LSTM across the time steps, nothing upstream of it): the path the ``unroll``
        form of the fast update (Eq. 10) pushes a synthetic gradient through.
        """
        hc, outs = start, []
        for inp in inputs:
            hc = self.cell(inp, hc)
            outs.append(hc[0])
        return outs

    def unroll_step_form(self, inputs: List[torch.Tensor], h_prev: List[torch.Tensor],
                         start: LSTMState) -> List[torch.Tensor]:
        """Outputs h_t = LSTM(u_t, (h_{t-1}, c_{t-1})) with the recorded h_{t-1} given (held
        fixed) and the cell state c chained from ``start``: the ``step`` form's graph
        (see :mod:`sharedsg.learn.fastpath`)."""
        c, outs = start[1], []
        for inp, h in zip(inputs, h_prev):
            h_t, c = self.cell(inp, (h, c))
            outs.append(h_t)
        return outs
