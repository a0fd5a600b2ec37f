"""The few-shot speed bench (bench/fewshot.py): every method reports a positive episode rate."""

import torch

from sharedsg.bench.fewshot import fewshot_episodes_per_s, synthetic_episode
from sharedsg.config import load_config


def test_every_method_reports_episodes_per_second():
    torch.set_num_threads(1)
    cfg = load_config(None, ["model.encoder=conv", "model.conv_channels=4", "model.slot_width=8", "sg.hidden=8",
                             "fewshot.queries=1", "fewshot.meta_batch=2", "fewshot.meta_batches={maml: 3, protonet: 1}",
                             "fewshot.protonet_train_ways=6"])
    out = fewshot_episodes_per_s(cfg, ways=5, shots=1, steps=1)
    assert set(out) == {"proposed", "baseline", "maml", "protonet"}
    assert all(v["episodes_per_s"] > 0 for v in out.values())
    assert out["maml"]["meta_batch"] == 3 and out["protonet"]["train_ways"] == 6 and out["proposed"]["meta_batch"] == 2


def test_synthetic_episode_has_the_sampler_layout():
    ep = synthetic_episode(5, 2, 3, torch.Generator().manual_seed(0))
    assert ep.support_x.shape == (10, 1, 28, 28) and ep.query_x.shape == (15, 1, 28, 28)
    assert torch.bincount(ep.support_y).tolist() == [2] * 5 and torch.bincount(ep.query_y).tolist() == [3] * 5
