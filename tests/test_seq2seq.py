"""The trajectory encoder-decoder (model/seq2seq.py): cumulative displacements, or with
``offsets`` (MAML's network) every frame an offset from the last observed one."""

import pytest
import torch

from sharedsg.model.seq2seq import Seq2Seq


@pytest.mark.parametrize("offsets", [False, True])
def test_a_constant_output_is_a_constant_step_or_a_constant_offset(offsets):
    torch.manual_seed(0)
    net = Seq2Seq(6, offsets=offsets)
    x = torch.randn(3, 7, 2)
    assert net(x, steps=4).shape == (3, 4, 2)
    torch.nn.init.zeros_(net.out.weight)
    torch.nn.init.constant_(net.out.bias, 0.25)
    y = net(x, steps=4)
    # offsets: every frame is the same offset from the last observed one; else frame t moves t + 1 steps
    moves = torch.ones(4) if offsets else torch.arange(1.0, 5.0)
    torch.testing.assert_close(y, x[:, -1:] + 0.25 * moves[None, :, None])


def test_offsets_change_the_forward_pass_not_the_parameters():
    torch.manual_seed(0)
    plain = Seq2Seq(6)
    off = Seq2Seq(6, offsets=True)
    off.load_state_dict(plain.state_dict())  # the same checkpoint layout
    x = torch.randn(2, 5, 2)
    torch.testing.assert_close(plain(x, steps=1), off(x, steps=1))  # the first frame is the same
    assert not torch.allclose(plain(x, steps=3)[:, 1:], off(x, steps=3)[:, 1:])
