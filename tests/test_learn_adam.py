"""``learn/adam.py`` computes what ``torch.optim.Adam`` computes, shares its checkpoint layout, and
does not import ``torch._dynamo``."""

import subprocess
import sys

import pytest
import torch

from sharedsg.learn.adam import Adam


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def _train(model: torch.nn.Module, opt, steps: int, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(4, 5, generator=g)
        loss = model(x).pow(2).mean()
        loss.backward()
        if _ == 1:  # a parameter without a gradient in one step keeps its moments (as torch's)
            model[0].bias.grad = None
        opt.step()
        opt.zero_grad(set_to_none=True)


TORCH_FORM = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}


def _torch_adam(params, form):
    return torch.optim.Adam(params, lr=0.01, **TORCH_FORM[form])


def _our_adam(params, form):
    return Adam(params, lr=0.01, form=form)


@pytest.mark.parametrize("form", list(TORCH_FORM))
def test_same_parameters_as_torch_adam(form):
    ours, theirs = _model(0), _model(0)
    _train(ours, _our_adam(ours.parameters(), form), 12)
    _train(theirs, _torch_adam(theirs.parameters(), form), 12)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


@pytest.mark.parametrize("form", list(TORCH_FORM))
def test_checkpoints_load_both_ways(form):
    """Train 5 steps with one optimiser, load its state into the other, train 5 more: same weights
    as 10 steps with torch's Adam alone."""
    ref = _model(0)
    ref_opt = _torch_adam(ref.parameters(), form)
    _train(ref, ref_opt, 5)
    _train(ref, ref_opt, 5, seed=2)
    for first, second in ((_our_adam, _torch_adam), (_torch_adam, _our_adam)):
        m = _model(0)
        opt = first(m.parameters(), form)
        _train(m, opt, 5)
        nxt = second(m.parameters(), form)
        nxt.load_state_dict(opt.state_dict())
        _train(m, nxt, 5, seed=2)
        for a, b in zip(m.parameters(), ref.parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_an_unknown_form_is_refused():
    with pytest.raises(ValueError, match="form 'magic'"):
        Adam(_model(0).parameters(), lr=0.01, form="magic")


def test_a_state_of_another_model_is_refused():
    opt = Adam(_model(0).parameters(), lr=0.01)
    with pytest.raises(ValueError, match="parameters"):
        opt.load_state_dict(Adam(torch.nn.Linear(2, 2).parameters(), lr=0.01).state_dict())


def test_a_stream_and_an_sg_update_never_import_dynamo():
    """The point of this module: a stream's step and an SG update leave torch._dynamo unimported."""
    code = (
        "import sys\n"
        "from sharedsg.config import load_config\n"
        "from sharedsg.harness.endpoint import LocalEndpoint\n"
        "from sharedsg.harness.stream import Stream\n"
        "from sharedsg.learn.sg import SGLearner\n"
        "cfg = load_config(None, ['data.obs_len=8', 'data.pred_len=8', 'learner.batch_size=4'])\n"
        "s = Stream(cfg, next(iter(cfg.streams)))\n"
        "s.join(LocalEndpoint(SGLearner(cfg.model, cfg.sg, seed=0)))\n"
        "s.train()\n"
        "s.learner.load_state_dict(s.learner.state_dict())\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
