"""Eq. 2, 5, 6: LSTM controllers stepped with an explicit (h, c) state."""

import torch

from sharedsg.model.controllers import Controller


def test_controller_steps_from_the_state_it_is_given():
    torch.manual_seed(0)
    ctl = Controller(5, 3)
    hc = ctl.start(4)
    assert hc[0].shape == (4, 3) and torch.count_nonzero(hc[0]) == 0 and torch.count_nonzero(hc[1]) == 0
    x = torch.randn(4, 5)
    h1, c1 = ctl(x, hc)
    # the same input from a carried state differs from the zero state: memory across batches
    carried = (h1.mean(0, keepdim=True).expand(2, -1), c1.mean(0, keepdim=True).expand(2, -1))
    assert not torch.allclose(ctl(x[:2], carried)[0], ctl(x[:2], ctl.start(2))[0])
    assert [w.shape for w in ctl.weights()] == [(12, 5), (12, 3), (12,), (12,)]


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
    # the step form: the recorded h_{t-1} given, the same values
    h_prev = [ctl.start(2)[0]] + [h.detach() for h in stepped[:-1]]
    for a, b in zip(ctl.unroll_step_form(inputs, h_prev, ctl.start(2)), stepped):
        torch.testing.assert_close(a, b)
