"""The few-shot baselines' shared job interface (learn/method.py): test accuracy and checkpoints
in the layout every saved MAML, prototypical-network and MANN checkpoint has."""

from __future__ import annotations

import pytest
import torch

from sharedsg import checkpoint
from sharedsg.config import load_config
from sharedsg.data.episodes import Episode
from sharedsg.experiments.maml import MamlMethod
from sharedsg.experiments.protonet import ProtoNetMethod
from sharedsg.learn.mann import MannMethod

TINY = ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification", "model.conv_channels=4",
        "fewshot.adapt_steps=1", "fewshot.inner_lr=0.3", "fewshot.protonet_train_ways=3",
        "fewshot.mann_controller=16", "fewshot.mann_slots=8", "fewshot.mann_width=6", "fewshot.mann_reads=2"]
# the checkpoint layout written before learn/method.py existed: {module: state dict, "optimizer": ...}
LAYOUT = [(MamlMethod, "net"), (ProtoNetMethod, "encoder"), (MannMethod, "model")]


def _episode(seed: int, ways: int = 3) -> Episode:
    g = torch.Generator().manual_seed(seed)
    sy, qy = torch.arange(ways), torch.arange(ways)
    proto = torch.rand(ways, 1, 28, 28, generator=g)
    sx = proto[sy] + 0.1 * torch.randn(ways, 1, 28, 28, generator=g)
    qx = proto[qy] + 0.1 * torch.randn(ways, 1, 28, 28, generator=g)
    return Episode(sx, sy, qx, qy, torch.arange(ways), torch.zeros(ways, dtype=torch.long))


@pytest.mark.parametrize("cls,module", LAYOUT)
def test_a_checkpoint_keeps_its_layout_and_resumes_the_same_training(cls, module, tmp_path):
    torch.set_num_threads(1)
    cfg = load_config(None, TINY)
    first = cls(cfg, ways=3, seed=0)
    first.meta_step([_episode(0), _episode(1)])
    checkpoint.save(tmp_path / "checkpoint.pt", {"method": first.state_dict()})
    saved = checkpoint.load(tmp_path / "checkpoint.pt")["method"]
    assert set(saved) == {module, "optimizer"}
    assert saved[module].keys() == getattr(first, module).state_dict().keys()
    again = cls(cfg, ways=3, seed=1)
    again.load_state_dict(saved)
    test = _episode(9)
    torch.testing.assert_close(again.query_logits(test), first.query_logits(test))
    for method in (first, again):  # the optimiser's state came back too: the next step is the same
        method.meta_step([_episode(2), _episode(3)])
    for (name, a), (_, b) in zip(getattr(first, module).state_dict().items(), getattr(again, module).state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize("cls,module", LAYOUT)
def test_test_accuracy_is_the_fraction_of_queries_whose_top_logit_is_their_class(cls, module):
    torch.set_num_threads(1)
    method = cls(load_config(None, TINY), ways=3, seed=0)
    ep = _episode(5)
    top = method.query_logits(ep).argmax(-1)
    assert method.test_episode(ep) == pytest.approx(float((top == ep.query_y).float().mean()))
    right = Episode(ep.support_x, ep.support_y, ep.query_x, top, ep.char_ids, ep.rotations)
    assert method.test_episode(right) == 1.0
