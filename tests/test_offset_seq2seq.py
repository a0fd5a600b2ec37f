"""MAML's trajectory network (model/offset_seq2seq.py): frames as offsets from the last observed one."""

import torch

from sharedsg.model.offset_seq2seq import OffsetSeq2Seq


def test_each_frame_is_the_last_observed_plus_the_decoder_output():
    torch.manual_seed(0)
    net = OffsetSeq2Seq(6)
    x = torch.randn(3, 7, 2)
    y = net(x, steps=4)
    assert y.shape == (3, 4, 2)
    torch.nn.init.zeros_(net.out.weight)
    torch.nn.init.constant_(net.out.bias, 0.25)
    y = net(x, steps=4)  # a constant output: every frame is the same offset from the last observed one
    torch.testing.assert_close(y, (x[:, -1] + 0.25).unsqueeze(1).expand(-1, 4, -1))
