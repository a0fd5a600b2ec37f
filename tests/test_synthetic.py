"""Eq. 9 and 11: SG predictors conditioned on the ground truth, zero at start."""

import pytest
import torch

from sharedsg.model.synthetic import SGModules, SGPredictor, sg_loss


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_first_synthetic_gradient_is_zero_and_conditioned_on_y(kind):
    torch.manual_seed(0)
    sg = SGPredictor(out_dim=6, target_dim=2, hidden=8, kind=kind)
    h, y = torch.randn(3, 5, 6), torch.randn(3, 5, 2)
    assert torch.count_nonzero(sg(h, y)) == 0
    torch.nn.init.normal_(sg.head.weight)
    out1, out2 = sg(h, y), sg(h, y + 1.0)
    assert out1.shape == (3, 5, 6)
    assert not torch.allclose(out1, out2), "the prediction must depend on the ground truth"


def test_sg_modules_one_per_controller_and_loss():
    mods = SGModules({"ic": 4, "oc": 4, "wc": 4}, target_dim=3, hidden=8, kind="mlp")
    assert set(mods.predictors) == {"ic", "oc", "wc"}
    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    assert float(sg_loss(a, b)) == 1.0
