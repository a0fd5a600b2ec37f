"""Eq. 3, 4 and 7 on batched tensors, and the state carried across batches."""

import math

import torch

from sharedsg.model.memory import MemoryStack, address, address_cosine, attention_entropy, read, write


def test_write_one_hot_replaces_exactly_one_slot():
    torch.manual_seed(0)
    mem = torch.randn(3, 5, 4)
    m_new = torch.randn(3, 4)
    z = torch.zeros(3, 5)
    slots = [0, 2, 4]
    for b, i in enumerate(slots):
        z[b, i] = 1.0
    out = write(mem, z, m_new)
    for b, i in enumerate(slots):
        assert torch.equal(out[b, i], m_new[b])
        others = [j for j in range(5) if j != i]
        assert torch.equal(out[b, others], mem[b, others])


def test_write_is_convex_mix_per_slot():
    torch.manual_seed(1)
    mem, m_new = torch.randn(2, 6, 3), torch.randn(2, 3)
    z = torch.softmax(torch.randn(2, 6), dim=-1)
    out = write(mem, z, m_new)
    for b in range(2):
        for i in range(6):
            expect = (1 - z[b, i]) * mem[b, i] + z[b, i] * m_new[b]
            torch.testing.assert_close(out[b, i], expect)


def test_write_matches_eq7_matrix_form():
    """M_t = M (I - z (x) e_k)^T + (m' (x) e_l)(z (x) e_k)^T, with the paper's outer-product notation."""
    torch.manual_seed(2)
    l, k = 5, 3
    mem, m_new = torch.randn(l, k), torch.randn(k)
    z = torch.softmax(torch.randn(l), dim=0)
    z_ek = z[:, None].expand(l, k)  # z (x) e_k: z duplicated k times -> (l, k)
    m_el = m_new[None, :].expand(l, k)  # m' (x) e_l -> (l, k)
    expect = mem * (1 - z_ek) + m_el * z_ek  # element-wise reading of the products
    torch.testing.assert_close(write(mem[None], z[None], m_new[None])[0], expect)


def test_read_is_z_times_memory_and_address_is_softmax():
    torch.manual_seed(3)
    mem, q = torch.randn(2, 4, 3), torch.randn(2, 3)
    z = address(q, mem)
    torch.testing.assert_close(z, torch.softmax(torch.stack([mem[b] @ q[b] for b in range(2)]), dim=-1))
    torch.testing.assert_close(z.sum(-1), torch.ones(2))
    r = read(z, mem)
    for b in range(2):
        torch.testing.assert_close(r[b], z[b] @ mem[b])


def test_attention_entropy_bounds():
    assert math.isclose(float(attention_entropy(torch.full((2, 10), 0.1))), math.log(10), rel_tol=1e-6)
    assert float(attention_entropy(torch.eye(10))) < 1e-6


def test_memory_stack_starts_every_batch_from_its_initial_content():
    """The content a batch ends with is the NMN's returned state (tests/test_nmn.py), not kept here."""
    stack = MemoryStack(4, 3, torch.Generator().manual_seed(0))
    start = stack.start(5)
    assert start.shape == (5, 4, 3) and not start.requires_grad
    torch.testing.assert_close(start[3], stack.init)
    assert "init" in dict(stack.named_buffers())
    learned = MemoryStack(4, 3, torch.Generator().manual_seed(0), learned_init=True)
    torch.testing.assert_close(learned.start(2)[1].detach(), stack.init)
    assert learned.start(2).requires_grad


def test_cosine_addressing_ignores_magnitudes_and_sharpens_with_strength():
    torch.manual_seed(4)
    mem, q = torch.randn(2, 5, 3), torch.randn(2, 3)
    z = address_cosine(q, mem, strength=10.0)
    torch.testing.assert_close(z, address_cosine(q * 7.0, mem * 0.01, strength=10.0))
    assert float(attention_entropy(address_cosine(q, mem, 50.0))) < float(attention_entropy(z))
