"""Eq. 9 and 11: SG predictors conditioned on the ground truth, zero at start; target scaling
(``sg.target_scaling=rms``): the predictor fits g / scale and its prediction is scaled back."""

import pytest
import torch

from sharedsg.model.synthetic import SGModules, SGPredictor, sg_fit_metrics, sg_loss


def _predictor(kind="lstm", scaling="rms", momentum=0.01, seed=0):
    torch.manual_seed(seed)
    return SGPredictor(out_dim=6, target_dim=2, hidden=8, kind=kind, scaling=scaling, momentum=momentum)


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_first_synthetic_gradient_is_zero_and_conditioned_on_y(kind):
    sg = _predictor(kind)
    h, y = torch.randn(3, 5, 6), torch.randn(3, 5, 2)
    assert torch.count_nonzero(sg(h, y)) == 0
    torch.nn.init.normal_(sg.head.weight)
    out1, out2 = sg(h, y), sg(h, y + 1.0)
    assert out1.shape == (3, 5, 6)
    assert not torch.allclose(out1, out2), "the prediction must depend on the ground truth"


def test_sg_modules_one_per_controller_and_loss():
    mods = SGModules({"ic": 4, "oc": 4, "wc": 4}, target_dim=3, hidden=8, kind="mlp", scaling="rms", momentum=0.01)
    assert set(mods.predictors) == {"ic", "oc", "wc"}
    assert {k for k in mods.state_dict() if "target_ms" in k} == {f"predictors.{c}.target_ms" for c in ("ic", "oc", "wc")}
    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    assert float(sg_loss(a, b)) == 1.0


def test_running_rms_is_the_mean_square_then_an_exponential_average():
    sg = _predictor(momentum=0.25)
    ms = [4e-10, 1e-10, 9e-10, 16e-10, 25e-10, 1e-10]
    for v in ms:
        sg.observe([torch.full((2, 3, 6), v ** 0.5), torch.full((1, 3, 6), v ** 0.5)])
    expect = sum(ms[:4]) / 4  # weights 1, 1/2, 1/3, 1/4: the plain mean ...
    for v in ms[4:]:  # ... then 1/5 and 1/6 are below momentum 0.25: 0.25 from there on
        expect = 0.75 * expect + 0.25 * v
    assert float(sg.target_ms) == pytest.approx(expect, rel=1e-5)
    assert float(sg.scale) == pytest.approx(expect ** 0.5, rel=1e-5)
    none = _predictor(scaling="none")
    none.observe([torch.full((2, 3, 6), 1e-3)])
    assert float(none.scale) == 1.0


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_scaled_prediction_is_the_fit_times_the_scale_and_the_loss_is_relative(kind):
    sg = _predictor(kind)
    torch.nn.init.normal_(sg.head.weight)
    h, y, g = torch.randn(3, 5, 6), torch.randn(3, 5, 2), torch.randn(3, 5, 6) * 1e-5
    sg.observe([g])
    scale = float(g.pow(2).mean().sqrt())
    assert float(sg.scale) == pytest.approx(scale, rel=1e-5)
    torch.testing.assert_close(sg(h, y), sg.normalised(h, y) * scale, rtol=1e-6, atol=0)
    with torch.no_grad():
        assert float(sg.fit_loss(h, y, g)) == pytest.approx(float(sg_loss(sg(h, y), g)) / scale ** 2, rel=1e-4)


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_rms_scaled_fit_does_not_depend_on_the_targets_scale(kind):
    """Trained on g * 1e-5, an rms predictor's prediction is exactly 1e-5 times the one trained on g
    (same seed): Eq. 11 sees the same numbers, and the scale is multiplied back at use."""
    g_gen = torch.Generator().manual_seed(1)
    data = [(torch.randn(4, 5, 6, generator=g_gen), torch.randn(4, 5, 2, generator=g_gen),
             torch.randn(4, 5, 6, generator=g_gen)) for _ in range(5)]
    preds = []
    for factor in (1.0, 1e-5):
        sg = _predictor(kind, seed=3)
        opt = torch.optim.Adam(sg.parameters(), lr=1e-2)
        for h, y, g in data * 4:
            sg.observe([g * factor])
            sg.fit_loss(h, y, g * factor).backward()
            opt.step()
            opt.zero_grad()
        preds.append(sg(data[0][0], data[0][1]).detach())
    assert preds[0].abs().mean() > 0.01
    torch.testing.assert_close(preds[1], preds[0] * 1e-5, rtol=1e-4, atol=0)


def test_fit_metrics_of_an_oracle_a_zero_predictor_and_a_scaled_one():
    g = torch.randn(4, 5, 6)
    oracle = sg_fit_metrics(g, g)
    assert (float(oracle["cosine"]), float(oracle["rel_mse"]), float(oracle["norm_ratio"])) == pytest.approx((1, 0, 1))
    zero = sg_fit_metrics(torch.zeros_like(g), g)
    assert (float(zero["cosine"]), float(zero["rel_mse"]), float(zero["norm_ratio"])) == (0.0, 1.0, 0.0)
    triple = sg_fit_metrics(3 * g, g)
    assert (float(triple["cosine"]), float(triple["rel_mse"]), float(triple["norm_ratio"])) == pytest.approx((1, 4, 3))
    assert float(sg_fit_metrics(g, torch.zeros_like(g))["rel_mse"]) == 0.0  # no true gradient: 0, not inf
