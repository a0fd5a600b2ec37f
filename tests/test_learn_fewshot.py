"""The NMN few-shot learner (model/fewshot.py, learn/fewshot.py) on real Omniglot episodes:
the memory carries the support items to the queries, the fast path of Eq. 10 is a true-gradient
step of the query loss when the SG is an oracle, and the baseline is the proposed method with the
fast path off."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sharedsg.config import load_config
from sharedsg.experiments.omniglot import OmniglotEpisodes
from sharedsg.learn.fewshot import FewShotNMNMethod, fast_step, stack_episodes
from sharedsg.model.fewshot import FAST_CONTROLLERS, cell_weights, lstm_step
from sharedsg.model.memory import write

TINY = ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification", "model.conv_channels=4",
        "model.conv_blocks=2", "model.slot_width=8", "model.slots=6", "sg.hidden=8", "fewshot.queries=2",
        "fewshot.meta_lr=0.01"]


@pytest.fixture(scope="module")
def episodes():
    torch.set_num_threads(1)
    eps = OmniglotEpisodes(load_config(None, TINY), ways=5, shots=1)  # the real files
    return [eps.episode("train", i) for i in range(4)]


def _method(fast: bool, *more: str) -> FewShotNMNMethod:
    return FewShotNMNMethod(load_config(None, TINY + list(more)), ways=5, seed=3, fast=fast)


def test_lstm_step_is_the_lstm_cell():
    m = _method(False)
    x, h, c = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8)
    want = m.model.oc.cell(x, (h, c))
    got = lstm_step(cell_weights(m.model.oc), x, (h, c))
    torch.testing.assert_close(got[0], want[0]) and torch.testing.assert_close(got[1], want[1])


@pytest.mark.needs_data("omniglot")
def test_memory_persists_within_an_episode_and_resets_between_episodes(episodes):
    m = _method(False)
    for ep in episodes[:2]:
        m.meta_step([ep])  # some training, so that the running batch-norm statistics are the data's
    m.model.eval()
    ep = episodes[0]
    batch = stack_episodes([ep])
    with torch.no_grad():
        full = m.model(batch["sx"], batch["sy"], batch["qx"])[0]
        # remove the support item of the first query's class: that query's prediction changes
        cls = int(ep.query_y[0])
        keep = ep.support_y != cls
        without = m.model(batch["sx"][:, keep], batch["sy"][:, keep], batch["qx"])[0]
        assert not torch.allclose(full[0], without[0], atol=1e-6)
        # nothing carries over from one episode to the next: episode 0 alone, after another one,
        # and beside another one in the batch gives the same predictions
        other = stack_episodes([episodes[1]])
        m.model(other["sx"], other["sy"], other["qx"])
        again = m.model(batch["sx"], batch["sy"], batch["qx"])[0]
        pair = stack_episodes([episodes[1], ep])
        beside = m.model(pair["sx"], pair["sy"], pair["qx"])[1]
    torch.testing.assert_close(again, full, rtol=0, atol=0)
    torch.testing.assert_close(beside, full, rtol=1e-5, atol=1e-6)


@pytest.mark.needs_data("omniglot")
@pytest.mark.parametrize("write", ["m", "mq"])
def test_write_controller_gets_a_non_zero_true_gradient(episodes, write):
    m = _method(False, f"fewshot.write_input={write}")
    assert m.model.wc.cell.input_size == (16 if write == "mq" else 8)  # mq: WC sees [m_t, q_t] (k = 8)
    batch = stack_episodes(episodes[:2])
    logits = m.model(batch["sx"], batch["sy"], batch["qx"])
    loss = F.cross_entropy(logits.reshape(-1, 5), batch["qy"].reshape(-1))
    grads = torch.autograd.grad(loss, list(m.model.wc.parameters()))
    assert all(float(g.abs().sum()) > 0 for g in grads)


STEP_LOSS = ["fewshot.label_input=previous", "fewshot.step_loss=true"]
FORMS = [[], ["fewshot.ic_input=layernorm_fan_in", "fewshot.oc_input=read_query"], ["fewshot.ic_input=fan_in"], STEP_LOSS,
         ["fewshot.write_input=q"]]


@pytest.mark.needs_data("omniglot")
@pytest.mark.parametrize("form", FORMS, ids=["as_printed", "normalised_compose", "fan_in", "step_loss", "key_write"])
@pytest.mark.parametrize("where", ["support", "queries"])
def test_baseline_is_proposed_with_the_fast_path_off(episodes, where, form):
    prop, base = _method(True, f"fewshot.fast_weights={where}", *form), _method(False, *form)
    for a, b in zip(prop.model.state_dict().values(), base.model.state_dict().values()):
        assert torch.equal(a, b)
    # the SG head starts at zero: a zero synthetic gradient, so the per-episode weights equal theta
    batch = stack_episodes(episodes[:2])
    lp, _, _, s = prop.forward(batch)
    lb, _, _, none = base.forward(batch)
    assert none is None and all(float(v.abs().max()) == 0.0 for v in s.values())
    torch.testing.assert_close(lp, lb, rtol=1e-6, atol=1e-6)
    lossp, _, gp, targets, _, _ = prop.gradients(batch)
    lossb, _, gb, none, _, _ = base.gradients(batch)
    torch.testing.assert_close(lossp, lossb, rtol=1e-6, atol=1e-7)
    assert set(targets) == set(FAST_CONTROLLERS) and set(none) == set(FAST_CONTROLLERS)
    for c in FAST_CONTROLLERS:
        torch.testing.assert_close(targets[c], none[c], rtol=1e-4, atol=1e-9)
    for n in gb:
        torch.testing.assert_close(gp[n], gb[n], rtol=1e-4, atol=1e-7, msg=n)


@pytest.mark.needs_data("omniglot")
def test_step_loss_predicts_every_support_label_before_it_is_shown(episodes):
    """fewshot.step_loss (MANN's protocol): the loss is the mean cross-entropy over f^D(m_t) of every
    support step and the queries; an item enters with the previous item's label (the first with none),
    and the SG targets are the gradients of that loss, which now reach the OC's output at the last
    support step directly (without the step loss only through the queries' start state)."""
    torch.manual_seed(0)
    m, plain = _method(False, *STEP_LOSS), _method(False, "fewshot.label_input=previous")
    batch = stack_episodes(episodes[:3])
    assert torch.equal(m.model.support_labels(batch["sy"])[:, 0], torch.zeros(3, 5))
    torch.testing.assert_close(m.model.support_labels(batch["sy"])[:, 1:], F.one_hot(batch["sy"][:, :-1], 5).float())
    loss, logits, _, targets, _, _ = m.gradients(batch)
    s_len = batch["sx"].shape[1]
    feats = m.model.encode(torch.cat([batch["sx"], batch["qx"]], dim=1))
    sp = m.model.support(feats[:, :s_len], batch["sy"])
    every = torch.cat([torch.stack([m.model.decoder(h) for h in sp.h_out["oc"]], 1), m.model.queries(sp, feats[:, s_len:])], 1)
    want = F.cross_entropy(every.reshape(-1, 5), torch.cat([batch["sy"], batch["qy"]], 1).reshape(-1),
                           reduction="none").reshape(3, -1).mean(1)
    torch.testing.assert_close(loss, want.detach(), rtol=1e-5, atol=1e-6)
    outs = torch.autograd.grad(want.sum(), sp.h_out["ic"] + sp.h_out["oc"])
    for i, c in enumerate(FAST_CONTROLLERS):
        torch.testing.assert_close(targets[c], torch.stack(outs[i * s_len:(i + 1) * s_len], 1), rtol=1e-4, atol=1e-8)
    # the last support step's OC output: the queries' part (scaled by Q / (S + Q)) plus its own prediction's
    # W^T (softmax(y_hat) - y) / (S + Q), a function of (h, y) alone
    n_all = s_len + batch["qy"].shape[1]
    without = plain.gradients(batch)[3]["oc"][:, -1] * batch["qy"].shape[1] / n_all
    last = m.model.decoder(sp.h_out["oc"][-1])
    own = (torch.softmax(last, -1) - F.one_hot(batch["sy"][:, -1], 5).float()) @ m.model.decoder.weight / n_all
    torch.testing.assert_close(targets["oc"][:, -1], without + own.detach(), rtol=1e-4, atol=1e-8)
    assert float(own.detach().norm()) > 0.1 * float(targets["oc"][:, -1].norm())


@pytest.mark.needs_data("omniglot")
@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("write", ["m", "mq", "q", "compose"])
def test_oracle_sg_fast_step_is_the_true_gradient_step(episodes, write, impl):
    """compose: fewshot.oc_input=read_query (OC([m_bar_t, q_t])) with the normalised IC input; q: the
    key written (the OC's support outputs but the last feed nothing: a zero target)."""
    torch.manual_seed(0)
    form = (["fewshot.ic_input=layernorm_fan_in", "fewshot.oc_input=read_query"] if write == "compose"
            else [f"fewshot.write_input={write}"])
    m = _method(True, *form)
    for ep in episodes[:2]:
        m.meta_step([ep])
    alpha = 0.7
    batch = stack_episodes(episodes[:3])
    s_len = batch["sx"].shape[1]
    feats = m.model.encode(torch.cat([batch["sx"], batch["qx"]], dim=1))
    sp = m.model.support(feats[:, :s_len], batch["sy"])
    # the queries use per-episode constant copies of theta: only the support part depends on theta here
    frozen = {c: {n: p.detach().unsqueeze(0).expand(3, *p.shape) for n, p in cell_weights(m.model.controller(c)).items()}
              for c in FAST_CONTROLLERS}
    logits = m.model.queries(sp, feats[:, s_len:], frozen)
    per_episode = F.cross_entropy(logits.reshape(-1, 5), batch["qy"].reshape(-1), reduction="none").reshape(3, -1).mean(1)
    outs = {c: torch.autograd.grad(per_episode.sum(), sp.h_out[c], retain_graph=True, materialize_grads=True)
            for c in FAST_CONTROLLERS}
    oracle = {c: torch.stack(outs[c], dim=1) for c in FAST_CONTROLLERS}  # s = the true gradient (Eq. 11 targets)
    fast = fast_step(m.model, sp, oracle, alpha, impl)
    for c in FAST_CONTROLLERS:
        theta = cell_weights(m.model.controller(c))
        for b in range(3):
            true = torch.autograd.grad(per_episode[b], list(theta.values()), retain_graph=True)
            for (n, p), g in zip(theta.items(), true):
                torch.testing.assert_close(fast[c][n][b], p.detach() - alpha * g, rtol=1e-4, atol=1e-7)
                assert float(g.abs().sum()) > 0


@pytest.mark.needs_data("omniglot")
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_oracle_fast_step_is_a_true_gradient_step_of_the_query_loss(episodes, impl):
    """fewshot.fast_weights=support (the default): with s = the true gradient (the Eq. 11 targets), the
    query logits after the method's fast step are those after theta_c - alpha * dL_b/dtheta_c for IC and
    OC (autograd, per episode b, the support part run with per-episode copies of theta and the
    queries with the meta-weights), and a small step lowers every episode's query loss."""
    torch.manual_seed(0)
    m = _method(True, f"model.impl={impl}", "learner.fast_lr=0.5")
    for ep in episodes[:2]:
        m.meta_step([ep])
    batch = stack_episodes(episodes[:3])
    s_len = batch["sx"].shape[1]
    with torch.no_grad():
        feats = m.model.encode(torch.cat([batch["sx"], batch["qx"]], dim=1))
    support, queries = feats[:, :s_len], feats[:, s_len:]

    def losses(logits):
        return F.cross_entropy(logits.reshape(-1, 5), batch["qy"].reshape(-1), reduction="none").reshape(3, -1).mean(1)

    first = m.model.support(support, batch["sy"])
    before = losses(m.model.queries(first, queries))
    outs = torch.autograd.grad(before.sum(), [h for c in FAST_CONTROLLERS for h in first.h_out[c]])
    oracle = {c: torch.stack(outs[i * s_len:(i + 1) * s_len], dim=1) for i, c in enumerate(FAST_CONTROLLERS)}
    copies = {c: {n: p.detach().unsqueeze(0).repeat(3, *[1] * p.dim()).requires_grad_()
                  for n, p in cell_weights(m.model.controller(c)).items()} for c in FAST_CONTROLLERS}
    leaves = [w for c in FAST_CONTROLLERS for w in copies[c].values()]
    true = iter(torch.autograd.grad(losses(m.model.queries(m.model.support(support, batch["sy"], copies), queries)).sum(),
                                    leaves))
    stepped = {c: {n: w.detach() - 0.5 * next(true) for n, w in copies[c].items()} for c in FAST_CONTROLLERS}
    with torch.no_grad():
        want = m.model.queries(m.model.support(support, batch["sy"], stepped), queries)
        got, sp = m.adapt(first, support, batch["sy"], queries, oracle)
    assert sp is not first
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    m.alpha = 0.1  # a small step: first order, the loss falls by alpha * |gradient|^2 (fast_weights=queries: rises)
    with torch.no_grad():
        after = losses(m.adapt(first, support, batch["sy"], queries, oracle)[0])
    assert bool((after < before.detach()).all()), (before, after)


@pytest.mark.needs_data("omniglot")
def test_fast_weights_on_the_queries_leave_the_support_pass(episodes):
    """fewshot.fast_weights=queries (the earlier form): the queries read the first pass's memory."""
    m = _method(True, "fewshot.fast_weights=queries")
    for ep in episodes[:2]:
        m.meta_step([ep])
    logits, sp, first, s = m.forward(stack_episodes(episodes[:2]))
    assert sp is first and all(float(v.abs().max()) > 0 for v in s.values())


@pytest.mark.needs_data("omniglot")
def test_proposed_trains_its_sgs_and_takes_fast_steps(episodes):
    m = _method(True)
    before = {k: v.clone() for k, v in m.sg.state_dict().items()}
    for _ in range(3):
        metrics = m.meta_step(episodes[:2])
    assert any(not torch.equal(before[k], v) for k, v in m.sg.state_dict().items())
    assert metrics["grad_norm/oc/synthetic"] > 0 and metrics["grad_norm/oc/true"] > 0
    assert -1.0 <= metrics["sg/oc/cosine"] <= 1.0
    batch = stack_episodes(episodes[:2])
    _, _, first, s = m.forward(batch)
    fast = fast_step(m.model, first, s, 1.0, m.impl)
    assert any(not torch.equal(fast["ic"][n][0], p) for n, p in cell_weights(m.model.ic).items())
    assert 0.0 <= m.test_episode(episodes[3]) <= 1.0


@pytest.mark.needs_data("omniglot")
@pytest.mark.parametrize("label,write", [("own", "m"), ("previous", "m"), ("own", "mq"), ("previous", "mq"), ("own", "q")])
def test_fast_impl_is_the_reference(label, write):
    """model.impl=fast (the fast step of Eq. 10 by hand) against reference (torch.func) on 2-shot
    episodes (10 support steps), with SGs trained away from their zero start: the same query
    logits, losses, meta-gradients, SG targets and synthetic gradients to 1e-5."""
    more = [f"fewshot.label_input={label}", f"fewshot.write_input={write}"]
    source = OmniglotEpisodes(load_config(None, TINY), ways=5, shots=2)
    eps = [source.episode("train", i) for i in range(4)]
    ref = _method(True, "model.impl=reference", *more)
    for ep in eps[:2]:
        ref.meta_step([ep])
    fast = _method(True, "model.impl=fast", *more)
    fast.load_state_dict(ref.state_dict())
    batch = stack_episodes(eps[2:])
    got, want = fast.gradients(batch), ref.gradients(batch)
    assert all(float(v.abs().max()) > 0 for v in want[5].values())  # non-zero synthetic gradients
    close = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[0], want[0], **close)  # per-episode query loss
    torch.testing.assert_close(got[1], want[1], **close)  # query logits
    for n in want[2]:
        torch.testing.assert_close(got[2][n], want[2][n], **close, msg=n)  # meta-gradients
    for c in FAST_CONTROLLERS:
        torch.testing.assert_close(got[3][c], want[3][c], **close)  # SG targets (Eq. 11)
        torch.testing.assert_close(got[5][c], want[5][c], **close)  # synthetic gradients (Eq. 9)
    # the step's metrics too (Adam's update itself is not compared: it divides by sqrt(v), so a
    # 1e-9 difference in a near-zero gradient element moves that weight by up to meta_lr)
    mf, mr = fast.meta_step(eps[2:]), ref.meta_step(eps[2:])
    assert mf.keys() == mr.keys()
    for n in mr:
        assert mf[n] == pytest.approx(mr[n], rel=1e-5, abs=1e-5), n


def _ic_pre_activations(method: FewShotNMNMethod, batch) -> tuple:
    """The IC's gate pre-activations at the first support step (h = 0), from the image columns of
    weight_ih and in all (image, label and biases), train mode as in meta-training."""
    model = method.model.train()
    with torch.no_grad():
        feats = model.encode(batch["sx"])
        cell, d = model.ic.cell, feats.shape[-1]
        image = feats @ cell.weight_ih[:, :d].t()
        total = image + F.one_hot(batch["sy"], 5).float() @ cell.weight_ih[:, d:].t() + cell.bias_ih + cell.bias_hh
    return image, total


@pytest.mark.needs_data("omniglot")
def test_the_normalised_input_controller_is_not_saturated_at_initialisation():
    """The few-shot configs' model (576-d conv features, k = 32) on 16 real 5w1s training episodes: with
    fewshot.ic_input=layernorm_fan_in the image part of the IC's gate pre-activations has std below 1.0
    and under 1% of the pre-activations have |pre| > 3; as printed (raw, PyTorch's LSTMCell init) the same
    std is above 2.5 and over 20% are beyond 3 (docs/results/fewshot_nmn.md: 0.58 / 0% against 3.0 / 31%)."""
    torch.set_num_threads(1)
    full = ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification", "model.output_dim=5"]
    source = OmniglotEpisodes(load_config(None, full), ways=5, shots=1)
    batch = stack_episodes([source.episode("train", i) for i in range(16)])

    def stats(form: str) -> tuple:
        method = FewShotNMNMethod(load_config(None, full + [f"fewshot.ic_input={form}"]), 5, seed=0, fast=False)
        image, total = _ic_pre_activations(method, batch)
        return float(image.std()), float((total.abs() > 3).float().mean())

    std, frac = stats("layernorm_fan_in")
    assert std < 1.0 and frac < 0.01, (std, frac)
    std, frac = stats("raw")
    assert std > 2.5 and frac > 0.2, (std, frac)


@pytest.mark.needs_data("omniglot")
def test_key_write_puts_the_ic_keys_in_the_memory(episodes):
    """fewshot.write_input=q (not the paper, MANN's write): no WC; each support step writes its IC key q_t
    with its address z_t (Eq. 7), and the other weights are the printed form's draws."""
    m, printed = _method(False, "fewshot.write_input=q"), _method(False)
    assert m.model.wc is None and not any(n.startswith("wc.") for n, _ in m.model.named_parameters())
    for name, value in m.model.state_dict().items():
        assert torch.equal(value, printed.model.state_dict()[name]), name
    batch = stack_episodes(episodes[:2])
    with torch.no_grad():
        sp = m.model.support(m.model.encode(batch["sx"]), batch["sy"])
        memory = m.model.memory_init.unsqueeze(0).expand(2, -1, -1)
        for q in sp.h_out["ic"]:
            memory = write(memory, m.model._address(q, memory), q)
    assert set(sp.h_out) == {"ic", "oc"}
    torch.testing.assert_close(sp.memory, memory, rtol=0, atol=0)


def test_the_forms_start_from_the_same_draws():
    """Paired comparisons: for one seed every weight the forms share is the same draw; fan_in is the raw
    draw of the IC's image columns times sqrt(k / D), and read_query's OC keeps read's m_bar columns."""
    raw, both = _method(False), _method(False, "fewshot.ic_input=layernorm_fan_in", "fewshot.oc_input=read_query")
    a, b = raw.model.state_dict(), both.model.state_dict()
    assert set(b) - set(a) == {"feature_norm.weight", "feature_norm.bias"}
    d = raw.model.encoder.out_dim
    for name in a:
        if name == "ic.cell.weight_ih":
            torch.testing.assert_close(b[name][:, :d], a[name][:, :d] * (8 / d) ** 0.5)
            assert torch.equal(b[name][:, d:], a[name][:, d:])
        elif name == "oc.cell.weight_ih":
            assert b[name].shape == (32, 16) and torch.equal(b[name][:, :8], a[name])
        else:
            assert torch.equal(a[name], b[name]), name
