"""The SG protocol of one stream: true path, synthetic path, and their mixing."""

import copy

import pytest
import torch

from sharedsg.data.batch import Batch
from sharedsg.learn.stream import StreamLearner

CONTROLLERS = ("ic", "oc", "wc")


def _batch(seed=0, b=4, t=6):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(b, t, 2, generator=g) * 0.3, torch.randn(b, t, 2, generator=g) * 0.3)


def _learner(cfg, mixing, lam=0.5):
    cfg.learner.mixing = mixing
    cfg.learner.lam = lam
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=3)
    torch.manual_seed(11)  # a non-zero SG, so the synthetic path is not trivially zero
    for p in learner.sg.parameters():
        p.data.normal_(0, 0.3)
    return learner


def _reference(learner, batch):
    """A copy of the NMN, its per-step graph (the reference unroll) and its loss, before the learner runs."""
    nmn = copy.deepcopy(learner.nmn)
    x = nmn.encode(batch.x)
    trace, _ = nmn.unroll(x, nmn.initial_state(x.shape[0]))
    loss = learner.task.loss(nmn.decode(torch.stack(trace.h["oc"], dim=1), batch.x), batch.y)
    return nmn, trace, loss


def test_bp_only_equals_plain_autograd(small_cfg):
    learner, batch = _learner(small_cfg(), "bp_only"), _batch()
    nmn, _, loss = _reference(learner, batch)
    loss.backward()
    grads, result = learner.gradients(batch)
    for name, p in nmn.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, atol=1e-6, rtol=0)
    assert result.metrics["loss/train"] == pytest.approx(float(loss.detach()), abs=1e-7)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_sg_only_pushes_synthetic_gradient_through_each_controller(small_cfg, impl):
    """learner.fast_path=unroll: each controller's gradient is its synthetic gradient pushed back through
    that controller alone: its LSTM re-run over its own inputs (taken as given) from its state at the batch start."""
    learner, batch = _learner(small_cfg("learner.fast_path=unroll", f"model.impl={impl}"), "sg_only"), _batch(1)
    nmn, out, loss = _reference(learner, batch)
    y_enc = learner.sg_condition(batch)  # sg.y_frame: y as the SG sees it
    s = learner.local_predict({c: torch.stack(out.h[c], dim=1).detach() for c in CONTROLLERS}, y_enc)
    true = dict(zip([n for n, _ in nmn.named_parameters()], torch.autograd.grad(loss, list(nmn.parameters()))))
    grads, _ = learner.gradients(batch)
    bsz, t_len = batch.y.shape[:2]
    for c in CONTROLLERS:
        assert s[c].abs().sum() > 0
        ctl = nmn.controller(c)
        hc = out.start[c]
        outputs = []
        for t in range(t_len):  # the controller alone, inputs as recorded in the forward pass
            hc = ctl.cell(out.inputs[c][t], hc)
            outputs.append(hc[0])
            torch.testing.assert_close(hc[0], out.h[c][t])  # same values as inside the NMN
        expect = torch.autograd.grad(outputs, list(ctl.parameters()),
                                     grad_outputs=[s[c][:, t] / bsz for t in range(t_len)])
        for (n, _), e in zip(ctl.named_parameters(), expect):
            torch.testing.assert_close(grads[f"{c}.{n}"], e, atol=1e-6, rtol=1e-5)
            assert not torch.allclose(grads[f"{c}.{n}"], true[f"{c}.{n}"])
    for name in true:
        if not name.startswith(CONTROLLERS):
            torch.testing.assert_close(grads[name], true[name], atol=1e-6, rtol=0)


@pytest.mark.parametrize("mixing", ["sum", "lambda"])
def test_mixing_modes_combine_true_and_synthetic(small_cfg, mixing):
    batch = _batch(2)
    parts = {}
    for mode in ("bp_only", "sg_only", mixing):
        parts[mode], _ = _learner(small_cfg(), mode, lam=0.25).gradients(batch)
    for name, g in parts[mixing].items():
        true, fast = parts["bp_only"][name], parts["sg_only"][name]
        if not name.startswith(CONTROLLERS):  # encoder, decoder, learned initial memory
            torch.testing.assert_close(g, true, atol=1e-6, rtol=0)
        elif mixing == "sum":
            torch.testing.assert_close(g, true + fast, atol=1e-6, rtol=1e-5)
        else:
            torch.testing.assert_close(g, 0.75 * true + 0.25 * fast, atol=1e-6, rtol=1e-5)


def test_step_returns_targets_and_metrics(small_cfg):
    learner = _learner(small_cfg(), "sum")
    result = learner.step(_batch())
    for c in CONTROLLERS:
        assert result.targets.h[c].shape == (4, 6, 8)
        assert result.targets.g[c].shape == (4, 6, 8)
        for tag in (f"grad_norm/{c}/true", f"grad_norm/{c}/synthetic", f"sg/{c}/cosine", f"sg/{c}/mse",
                    f"sg/{c}/rel_mse", f"sg/{c}/norm_ratio"):
            assert tag in result.metrics
        ratio = result.metrics[f"grad_norm/{c}/synthetic"] / result.metrics[f"grad_norm/{c}/true"]
        assert result.metrics[f"sg/{c}/norm_ratio"] == pytest.approx(ratio, rel=1e-5)
    assert result.targets.y.shape == (4, 6, 2)
    for tag in ("loss/train", "ade/train", "memory/attention_entropy"):
        assert torch.isfinite(torch.tensor(result.metrics[tag]))
    assert learner.steps == 1


def test_checkpoint_round_trip(small_cfg, tmp_path):
    learner = _learner(small_cfg(), "sum")
    learner.step(_batch())
    path = tmp_path / "stream.pt"
    torch.save(learner.state_dict(), path)
    other = _learner(small_cfg(), "sum")
    other.load_state_dict(torch.load(path, weights_only=True))
    batch = _batch(5)
    torch.testing.assert_close(learner.step(batch).metrics["loss/train"], other.step(batch).metrics["loss/train"])


def test_fast_path_is_its_own_sgd_step(small_cfg):
    """Eq. 10: sum = the Adam step of bp_only plus theta_c -= alpha * (synthetic gradient pushed back)."""
    batch = _batch(7)
    fast_cfg = small_cfg("learner.fast_lr=0.5")
    with_fast, slow_only = _learner(fast_cfg, "sum"), _learner(small_cfg(), "bp_only")
    probe = copy.deepcopy(with_fast)
    _, fast, _ = probe.paths(batch)
    with_fast.step(batch)
    slow_only.step(batch)
    moved = dict(with_fast.nmn.named_parameters())
    for name, p in slow_only.nmn.named_parameters():
        diff = moved[name].detach() - p.detach()
        if name in fast:
            torch.testing.assert_close(diff, -0.5 * fast[name], atol=1e-6, rtol=1e-4)
        else:
            assert torch.equal(diff, torch.zeros_like(diff)), name
    assert set(fast) == {n for n, _ in with_fast.nmn.named_parameters() if n.startswith(CONTROLLERS)}


def test_carried_state_is_explicit_and_checkpointed(small_cfg, tmp_path):
    """model.persist_memory: paths/gradients read the carried state and return the next one; only
    step() moves to it; the checkpoint carries it."""
    cfg = small_cfg("model.memory_init=random", "model.persist_memory=true")
    learner, batch = _learner(cfg, "sum"), _batch(8)
    first, r1 = learner.gradients(batch)
    again, r2 = learner.gradients(batch)
    assert learner.carried is None and r1.next_state.batch_size == 1
    for n in first:
        assert torch.equal(first[n], again[n]), n
    learner.step(batch)
    for k, v in r1.next_state.tensors().items():
        torch.testing.assert_close(learner.carried.tensors()[k], v, atol=1e-6, rtol=1e-5)
    after, _ = learner.gradients(batch)
    assert any(not torch.allclose(after[n], first[n]) for n in first), "the carried state must change the step"
    torch.save(learner.state_dict(), tmp_path / "stream.pt")
    other = _learner(small_cfg("model.memory_init=random", "model.persist_memory=true"), "sum")
    other.load_state_dict(torch.load(tmp_path / "stream.pt", weights_only=True))
    for k, v in learner.carried.tensors().items():
        assert torch.equal(other.carried.tensors()[k], v), k
    torch.testing.assert_close(other.predict(batch.x, 6), learner.predict(batch.x, 6))


FOOTPRINT_SCRIPT = """
import sys
import torch
from sharedsg.config import load_config
from sharedsg.data.batch import Batch
from sharedsg.learn.sg import SGLearner
from sharedsg.learn.stream import StreamLearner

cfg = load_config(None, sys.argv[1:])
learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=3)
g = torch.Generator().manual_seed(0)
batch = Batch(torch.randn(4, 6, 2, generator=g) * 0.3, torch.randn(4, 6, 2, generator=g) * 0.3)
result = learner.step(batch)
group = SGLearner(cfg.model, cfg.sg, seed=0)
group.update([result.targets])
print(sorted(m for m in ("sympy", "matplotlib", "tensorboard") if m in sys.modules))
"""


def test_a_stream_and_its_sg_group_never_import_sympy_matplotlib_or_tensorboard():
    """What a stream actor and an SG group actor run (a fast step with the SG path, an Eq. 11
    update) imports none of these: each would add 25-35 MB to every such process (sympy comes in
    through ``torch.autograd.grad(..., grad_outputs=...)``)."""
    import subprocess
    import sys

    from conftest import SMALL

    proc = subprocess.run([sys.executable, "-c", FOOTPRINT_SCRIPT, *SMALL, "learner.mixing=sum"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", proc.stdout


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_an_oracle_predictor_scores_a_perfect_fit(small_cfg, impl):
    learner = _learner(small_cfg(f"model.impl={impl}"), "sum")
    batch = _batch(2)
    g = learner.paths(batch)[2].targets.g  # paths leaves the learner as it was
    metrics = learner.paths(batch, predict=lambda h, y: g)[2].metrics
    for c in CONTROLLERS:
        assert metrics[f"sg/{c}/cosine"] == pytest.approx(1.0, abs=1e-5)
        assert metrics[f"sg/{c}/rel_mse"] == pytest.approx(0.0, abs=1e-6)
        assert metrics[f"sg/{c}/norm_ratio"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("frame", ["decoder", "data"])
def test_the_sg_sees_y_in_the_decoders_frame(small_cfg, frame):
    """sg.y_frame=decoder with model.predict_offsets: y minus the last observed frame (Eq. 8's frame)."""
    learner = _learner(small_cfg(f"sg.y_frame={frame}"), "sum")
    batch = _batch(3)
    y = learner.step(batch).targets.y
    expect = batch.y - batch.x[:, -1:] if frame == "decoder" else batch.y
    torch.testing.assert_close(y, expect)
    plain = _learner(small_cfg(f"sg.y_frame={frame}", "model.predict_offsets=false"), "sum")
    torch.testing.assert_close(plain.step(batch).targets.y, batch.y)
