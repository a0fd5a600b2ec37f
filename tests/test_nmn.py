"""Eq. 1-8: the NMN forward exposes every controller output at every step, in the graph."""

import torch

from sharedsg.model.nmn import NMN


def test_trajectory_nmn_shapes_and_controller_outputs(small_cfg):
    cfg = small_cfg()
    nmn = NMN(cfg.model, seed=0)
    chi = torch.randn(3, 6, 2)
    out, _ = nmn(chi)
    assert out.y_hat.shape == (3, 6, 2)
    assert out.z.shape == (3, 6, cfg.model.slots)
    for c in ("ic", "oc", "wc"):
        assert out.h[c].shape == (3, 6, cfg.model.slot_width)
        assert out.h[c].requires_grad
    # the decoder reads m_t = h_oc (Eq. 8), its output relative to the last observed frame
    torch.testing.assert_close(out.y_hat[:, 2], nmn.decoder(out.h["oc"][:, 2]) + chi[:, -1])
    literal = NMN(small_cfg("model.predict_offsets=false").model, seed=0)
    out, _ = literal(chi)
    torch.testing.assert_close(out.y_hat[:, 2], literal.decoder(out.h["oc"][:, 2]))


def test_conv_nmn_for_images(small_cfg):
    cfg = small_cfg("model.encoder=conv", "model.decoder=classification", "model.output_dim=5", "model.conv_channels=8")
    nmn = NMN(cfg.model, seed=0)
    assert nmn.encoder.out_dim == 8 * 3 * 3  # 28 -> 14 -> 7 -> 3 after three 2x2 pools
    out, _ = nmn(torch.rand(4, 1, 1, 28, 28))
    assert out.y_hat.shape == (4, 1, 5)


def test_state_is_passed_in_and_returned(small_cfg):
    """forward(chi, prev_state) -> (output, next_state); the module keeps nothing between calls."""
    x = torch.randn(2, 6, 2)
    nmn = NMN(small_cfg("model.memory_init=random", "model.persist_memory=true").model, seed=0)
    out, state = nmn(x)
    first = out.y_hat.detach()
    assert state.memory.shape == (2, 4, 8) and state.h["oc"].shape == (2, 8)
    carried = state.carried()
    assert carried.batch_size == 1 and not carried.memory.requires_grad
    second = nmn(x, carried)[0].y_hat.detach()
    assert not torch.allclose(first, second), "the carried memory must change the next batch's output"
    torch.testing.assert_close(nmn(x)[0].y_hat.detach(), first)  # no hidden state advanced
    torch.testing.assert_close(nmn(x, nmn.initial_state(1))[0].y_hat.detach(), first)
    assert not any("current" in k for k in nmn.state_dict())


def test_relu_output_activation_is_a_choice(small_cfg):
    nmn = NMN(small_cfg("model.output_activation=relu", "model.predict_offsets=false").model, seed=0)
    assert float(nmn(torch.randn(8, 6, 2))[0].y_hat.detach().min()) >= 0.0
    lin = NMN(small_cfg("model.predict_offsets=false").model, seed=0)
    assert float(lin(torch.randn(8, 6, 2) * 3)[0].y_hat.detach().min()) < 0.0


def test_learned_initial_memory_gets_gradient_and_every_batch_starts_there(small_cfg):
    nmn = NMN(small_cfg().model, seed=0)
    assert nmn.memory.init is not None
    x = torch.randn(3, 6, 2)
    out, _ = nmn(x)
    out.y_hat.sum().backward()
    assert nmn.memory.init.grad is not None and nmn.memory.init.grad.abs().sum() > 0
    torch.testing.assert_close(nmn(x)[0].y_hat, out.y_hat)


def test_paper_dot_addressing_is_available(small_cfg):
    nmn = NMN(small_cfg("model.addressing=dot").model, seed=0)
    out, _ = nmn(torch.randn(2, 6, 2))
    assert out.z.shape[-1] == 4


def test_paper_literal_memory_collapses_to_uniform_attention(small_cfg):
    """Eq. 3 + 7 as printed, memory carried across batches: the slots become identical, the
    attention uniform, and the prediction no longer depends on the input (docs/design.md, "The NMN as printed")."""
    import math

    from sharedsg.data.sources import make_source
    from sharedsg.learn.stream import StreamLearner

    cfg = small_cfg("model.addressing=dot", "model.memory_init=random", "model.persist_memory=true",
                    "model.predict_offsets=false",
                    "model.slots=10", "model.slot_width=16", "data.format=sample", "data.obs_len=20",
                    "data.pred_len=20", "learner.lr=0.003", "learner.batch_size=16")
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    src = make_source(cfg.data, "cyclist", "train", 0)
    for _ in range(30):
        result = learner.step(src.next_batch(16))
    batch = src.next_batch(16)
    spread = float(learner.predict(batch.x, 20).var(dim=0).mean())
    print(f"paper-literal memory after 30 steps: attention entropy {result.metrics['memory/attention_entropy']:.5f} "
          f"(log 10 = {math.log(10):.5f}), input-controller grad norm {result.metrics['grad_norm/ic/true']:.2e}, "
          f"prediction spread across the batch {spread:.2e}")
    assert result.metrics["memory/attention_entropy"] > 0.999 * math.log(10)
    assert spread < 1e-6
