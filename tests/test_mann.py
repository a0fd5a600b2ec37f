"""MANN (Santoro et al.): least-recently-used writes, memory within an episode, the baseline learns."""

from __future__ import annotations

import pytest
import torch

from sharedsg.config import load_config
from sharedsg.experiments.omniglot import OmniglotEpisodes
from sharedsg.learn.fewshot import stack_episodes
from sharedsg.learn.mann import MannMethod
from sharedsg.model.mann import Mann, least_used

TINY = ["experiment.kind=fewshot", "fewshot.queries=2", "fewshot.mann_controller=16", "fewshot.mann_slots=8",
        "fewshot.mann_width=6", "fewshot.mann_reads=2", "fewshot.meta_lr=0.003"]


def test_least_used_marks_the_lowest_usage_slots():
    usage = torch.tensor([[0.5, 0.1, 0.9, 0.0]])
    assert least_used(usage, 2).tolist() == [[0.0, 1.0, 0.0, 1.0]]


def test_first_write_goes_to_the_least_used_slots_and_is_read_back():
    torch.manual_seed(0)
    m = Mann(3, 2, hidden=5, slots=4, width=3, reads=1)
    s = m.start(1, torch.zeros(1))
    s.least_used = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    _, s2 = m.step(torch.randn(1, 3), torch.zeros(1, 2), s)
    changed = (s2.memory - s.memory).detach().abs().sum(-1)[0]
    assert float(changed[2]) > 0 and float(changed[[0, 1, 3]].abs().sum()) == 0.0  # no prior reads: only slot 2
    assert float(s2.usage.sum()) > 0


@pytest.mark.needs_data("omniglot")
def test_query_depends_on_its_class_support_and_training_lowers_the_loss():
    torch.set_num_threads(1)
    cfg = load_config(None, TINY)
    eps = OmniglotEpisodes(cfg, ways=3, shots=1)
    train = [eps.episode("train", i) for i in range(4)]
    m = MannMethod(cfg, ways=3, seed=0)
    batch = stack_episodes(train[:1])
    with torch.no_grad():
        full = m.logits(batch)[0]
        keep = train[0].support_y != train[0].query_y[0]
        cut = {"sx": batch["sx"][:, keep], "sy": batch["sy"][:, keep], "qx": batch["qx"]}
        assert not torch.allclose(m.logits(cut)[0][0], full[0])
    losses = [m.meta_step(train)["loss/query_train"] for _ in range(15)]
    assert losses[-1] < losses[0]
    assert 0.0 <= m.test_episode(eps.episode("test", 0)) <= 1.0
