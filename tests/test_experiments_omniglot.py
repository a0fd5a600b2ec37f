"""Omniglot few-shot protocol on the real files (Sec. 4.1): episodes, held-out characters, resumable jobs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sharedsg.config import ConfigError, load_config
from sharedsg.data.sources import load_omniglot_cached, resolve_cache, resolve_root
from sharedsg.experiments.omniglot import FewShotJob, OmniglotEpisodes, fewshot_jobs, mean_ci95, seed_summary

TINY = ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification", "model.conv_channels=8",
        "model.slot_width=8", "sg.hidden=8", "fewshot.meta_batch=1", "fewshot.adapt_steps=1",
        "fewshot.queries=2", "fewshot.checkpoint_every=1", "fewshot.log_every=1", "fewshot.protonet_train_ways=6"]


@pytest.fixture(scope="module")
def data():
    cfg = load_config(None, TINY)  # the real files must be there: a missing dataset fails the test
    return load_omniglot_cached(resolve_root(cfg.data), resolve_cache(cfg.data))


def _cfg(*more):
    return load_config(None, TINY + list(more))


@pytest.mark.needs_data("omniglot")
def test_episodes_remap_labels_and_keep_support_and_query_apart(data):
    eps = OmniglotEpisodes(_cfg(), ways=5, shots=3)
    seen_chars = set()
    for i in range(20):
        ep = eps.episode("test", i)
        assert sorted(set(ep.support_y.tolist())) == list(range(5))
        assert sorted(set(ep.query_y.tolist())) == list(range(5))
        assert torch.bincount(ep.support_y).tolist() == [3] * 5
        # the label of a class is episode-local: the same label stands for other characters elsewhere
        seen_chars.add(tuple(ep.char_ids.tolist()))
        # no drawing is both a support and a query image (pixel-exact comparison)
        s = ep.support_x.reshape(len(ep.support_x), -1)
        q = ep.query_x.reshape(len(ep.query_x), -1)
        same = (s[:, None, :] == q[None, :, :]).all(-1)
        assert not bool(same.any())
        # each label stands for one (character, rotation) in both sets
        assert ep.support_x.shape == (15, 1, 28, 28) and ep.query_x.shape == (10, 1, 28, 28)
    assert len(seen_chars) == 20
    # the same index gives the same episode (resumed jobs and paired methods see the same data)
    a, b = eps.episode("test", 3), eps.episode("test", 3)
    assert torch.equal(a.query_x, b.query_x) and torch.equal(a.char_ids, b.char_ids)


@pytest.mark.needs_data("omniglot")
def test_training_never_sees_held_out_characters(data, tmp_path):
    held_out = set(int(c) for c in data.char_ids[data.pool_indices("test")])
    train_pool = set(int(c) for c in data.char_ids[data.pool_indices("train")])
    assert len(held_out) == 423 and len(train_pool) == 1200 and not held_out & train_pool
    cfg = _cfg("fewshot.meta_iterations=3", "fewshot.test_episodes=2", "fewshot.methods=[baseline]")
    job = FewShotJob(cfg, "5w1s-baseline")
    for it in range(300):  # many meta-training episodes, by character id
        for ep in job.train_episodes(it):
            chars = set(int(c) for c in ep.char_ids)
            assert chars <= train_pool and not chars & held_out
    for e in range(300):
        assert set(int(c) for c in job.episodes.episode("test", e).char_ids) <= held_out
    job.run(tmp_path / "job")  # the real meta-training loop records what it saw
    assert job.train_chars and job.train_chars <= train_pool and not job.train_chars & held_out


@pytest.mark.needs_data("omniglot")
@pytest.mark.parametrize("method", ["proposed", "baseline", "maml", "protonet"])
def test_job_resumes_from_its_checkpoint(data, tmp_path, method):
    name = f"5w1s-{method}"
    short = FewShotJob(_cfg("fewshot.meta_iterations=1", "fewshot.test_episodes=0"), name)
    short.run(tmp_path)
    assert (tmp_path / "checkpoint.pt").is_file()
    messages = []
    full = FewShotJob(_cfg("fewshot.meta_iterations=2", "fewshot.test_episodes=3"), name)
    res = full.run(tmp_path, progress=messages.append)
    assert any("resumed at iteration 1" in m for m in messages)
    assert res["meta_iterations"] == 2 and res["test_episodes"] == 3
    assert 0.0 <= res["accuracy"] <= 1.0 and res["ci95"] >= 0.0
    # a straight run gives the same numbers as the interrupted-and-resumed one
    straight = FewShotJob(_cfg("fewshot.meta_iterations=2", "fewshot.test_episodes=3"), name).run(tmp_path / "s")
    assert straight["accuracy"] == pytest.approx(res["accuracy"], abs=1e-6)
    # a finished job run again does nothing new
    again = FewShotJob(_cfg("fewshot.meta_iterations=2", "fewshot.test_episodes=3"), name).run(tmp_path)
    assert again["accuracy"] == res["accuracy"] and again["test_episodes"] == 3


@pytest.mark.needs_data("omniglot")
def test_proposed_uses_synthetic_gradients_and_baseline_does_not(data):
    cfg = _cfg("fewshot.meta_batch=2")
    prop, base = FewShotJob(cfg, "5w1s-proposed"), FewShotJob(cfg, "5w1s-baseline")
    eps = prop.train_episodes(0)
    assert len(eps) == 2
    for _ in range(3):  # the SG predictors learn from the first targets (zero-initialised head)
        m_prop = prop.impl.meta_step(eps)
    m_base = base.impl.meta_step(eps)
    assert prop.impl.sg is not None and m_prop["grad_norm/oc/synthetic"] > 0 and base.impl.sg is None
    assert m_prop["grad_norm/oc/true"] > 0 and m_base["grad_norm/oc/true"] > 0 and "grad_norm/oc/synthetic" not in m_base


@pytest.mark.needs_data("omniglot")
def test_protonet_trains_on_wider_episodes_and_budgets_stop_training(data, tmp_path):
    cfg = _cfg("fewshot.meta_iterations=1000", "fewshot.cpu_s={protonet: 0.5}", "fewshot.test_episodes=2",
               "fewshot.val_every=2", "fewshot.val_episodes=1", "fewshot.meta_batches={protonet: 1}")
    job = FewShotJob(cfg, "5w1s-protonet-s1")
    assert job.seed == 1 and job.train_ways == 6
    assert int(job.train_episodes(0)[0].support_y.max()) == 5  # 6-way training episodes
    res = job.run(tmp_path)
    assert 0 < res["meta_iterations"] < 1000 and res["train_cpu_s"] >= 0.5 and res["cpu_budget_s"] == 0.5
    assert res["train_episodes"] == res["meta_iterations"] and (tmp_path / "curve.png").is_file()
    vals = [(step, v) for tag, step, v in res["scalars"] if tag == "accuracy/val"]
    assert vals[0][0] == 0 and len(vals) >= 2 and all(0.0 <= v <= 1.0 for _, v in vals)
    # training seeds draw different training episodes; every seed is tested on the same episodes
    other = FewShotJob(cfg, "5w1s-protonet-s2")
    assert not torch.equal(other.train_episodes(0)[0].support_x, job.train_episodes(0)[0].support_x)
    assert torch.equal(other.episodes.episode("test", 4).query_x, job.episodes.episode("test", 4).query_x)


def test_config_names_jobs_and_rejects_bad_settings():
    cfg = _cfg("fewshot.settings=[5w1s,20w5s]", "fewshot.methods=[proposed,maml]")
    assert fewshot_jobs(cfg) == ["5w1s-proposed", "5w1s-maml", "20w5s-proposed", "20w5s-maml"]
    seeded = _cfg("fewshot.methods=[protonet]", "fewshot.seeds=[0,1,2]")
    assert fewshot_jobs(seeded) == ["5w1s-protonet-s0", "5w1s-protonet-s1", "5w1s-protonet-s2"]
    with pytest.raises(ConfigError, match="fewshot.settings"):
        _cfg("fewshot.settings=[5way]")
    with pytest.raises(ConfigError, match="fewshot.methods"):
        _cfg("fewshot.methods=[metanet]")
    with pytest.raises(ConfigError, match="fewshot.cpu_s"):
        _cfg("fewshot.cpu_s={maml: -1}")
    with pytest.raises(ConfigError, match="fewshot.seeds"):
        _cfg("fewshot.seeds=[1,1]")


def test_seed_summary_is_mean_and_std_over_seeds():
    jobs = {f"5w1s-maml-s{i}": {"setting": "5w1s", "method": "maml", "seed": i, "accuracy": a, "ci95": 0.01,
                                "test_episodes": 1000} for i, a in enumerate([0.90, 0.92, 0.94])}
    out = seed_summary(jobs)["5w1s-maml"]
    assert out["seeds"] == [0, 1, 2] and out["accuracy_mean"] == pytest.approx(0.92)
    assert out["accuracy_std"] == pytest.approx(0.02)
    one = seed_summary({"5w1s-maml-s0": jobs["5w1s-maml-s0"]})["5w1s-maml"]
    assert one["accuracy_std"] is None and json.loads(json.dumps(one, allow_nan=False)) == one  # strict JSON


def test_mean_ci95():
    mean, ci = mean_ci95([0.0, 1.0] * 500)
    assert mean == pytest.approx(0.5) and ci == pytest.approx(1.96 * np.std([0.0, 1.0] * 500, ddof=1) / np.sqrt(1000))


@pytest.mark.needs_data("omniglot")
def test_maml_meta_trains_on_one_query_per_class_and_tests_on_the_setting(data):
    job = FewShotJob(_cfg("fewshot.queries=3", "fewshot.maml_train_queries=1", "fewshot.meta_batches={maml: 2}"),
                     "5w1s-maml")
    eps = job.train_episodes(0)
    assert len(eps) == 2 and all(len(e.query_y) == 5 for e in eps)
    assert len(job.episodes.episode("test", 0).query_y) == 15
