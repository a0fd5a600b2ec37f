"""The few-shot NMN's synthetic-feature task (bench/nmn_synthetic.py): its episodes have the layout and
the scale of f^E's features, the default configuration leaves chance on it, and a bad option is one line."""

import subprocess
import sys

import pytest
import torch

from sharedsg.bench.nmn_synthetic import FEATURE_MEAN, FEATURE_STD, first_at, synthetic_batch, train_variant
from sharedsg.config import load_config


def test_synthetic_episodes_have_the_layout_and_scale_of_the_features():
    b = synthetic_batch(16, 5, 5, 576, 0.5, torch.Generator().manual_seed(0))
    assert b["sf"].shape == (16, 5, 576) and b["qf"].shape == (16, 25, 576)
    assert all(sorted(row.tolist()) == list(range(5)) for row in b["sy"])
    assert all(torch.bincount(row).tolist() == [5] * 5 for row in b["qy"])
    assert abs(float(b["qf"].mean()) - FEATURE_MEAN) < 0.02 and abs(float(b["qf"].std()) - FEATURE_STD) < 0.02
    # a query is nearer (cosine, after removing the common mean) to its own class's support item than to the others
    s, q = b["sf"] - FEATURE_MEAN, b["qf"] - FEATURE_MEAN
    sim = torch.nn.functional.cosine_similarity(q.unsqueeze(2), s.unsqueeze(1), dim=-1)  # (B, Q, N)
    nearest = torch.gather(b["sy"], 1, sim.argmax(-1))
    assert bool((nearest == b["qy"]).all())


def test_first_at():
    assert first_at([(0, 0.2), (100, 0.39), (200, 0.41), (300, 0.5)], 0.4) == 200
    assert first_at([(0, 0.2), (100, 0.3)], 0.4) is None


@pytest.mark.slow
def test_the_normalised_input_leaves_chance_and_the_printed_one_does_not():
    """Seed 4, 2,000 meta-updates of 16 episodes, Eq. 5 as printed: with fewshot.ic_input=layernorm_fan_in
    the learner leaves chance (40%), with the raw input it stays at it (docs/results/fewshot_nmn.md,
    section 3: 45.6% against 20.7% for this seed)."""
    torch.set_num_threads(1)
    cfg = load_config(None, ["experiment.kind=fewshot", "model.encoder=conv", "fewshot.meta_batch=16",
                             "fewshot.meta_lr=0.001"])
    run = dict(seed=4, steps=2000, eval_every=2000, eval_batches=4, noise=0.5)
    chosen = train_variant(cfg, "layernorm_fan_in:read", **run)
    printed = train_variant(cfg, "raw:read", **run)
    assert chosen[-1][1] >= 0.4 and printed[-1][1] < 0.25, (chosen, printed)


def test_a_bad_variant_is_one_line_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "sharedsg.cli", "bench", "nmn-synthetic", "--variants", "raw:compose"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "raw:compose" in out.stderr.strip().splitlines()[-1]
