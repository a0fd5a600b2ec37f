"""Eq. 2, 5, 6: LSTM controllers whose (h, c) state carries across batches."""

import torch

from sharedsg.model.controllers import Controller


def test_controller_steps_and_carries_state():
    torch.manual_seed(0)
    ctl = Controller(5, 3)
    hc = ctl.start(4)
    assert hc[0].shape == (4, 3) and torch.count_nonzero(hc[0]) == 0
    x = torch.randn(4, 5)
    h1, c1 = ctl(x, hc)
    ctl.carry((h1, c1))
    h_start, c_start = ctl.start(2)
    torch.testing.assert_close(h_start[0], h1.mean(0).detach())
    # the same input from the carried state differs from the zero state: memory across batches
    assert not torch.allclose(ctl(x[:2], (h_start, c_start))[0], ctl(x[:2], (torch.zeros(2, 3), torch.zeros(2, 3)))[0])
    ctl.reset()
    assert torch.count_nonzero(ctl.start(1)[0]) == 0


def test_unroll_reproduces_the_stepped_outputs():
    torch.manual_seed(1)
    ctl = Controller(4, 3)
    inputs = [torch.randn(2, 4) for _ in range(5)]
    hc, stepped = ctl.start(2), []
    for inp in inputs:
        hc = ctl(inp, hc)
        stepped.append(hc[0])
    for a, b in zip(ctl.unroll(inputs, ctl.start(2)), stepped):
        torch.testing.assert_close(a, b)
