"""MNIST rare-class ablation (Sec. 5.1) on the real files: the schedule, the logged norms, resume, figures."""

from __future__ import annotations

import pytest

from sharedsg.config import load_config
from sharedsg.experiments.mnist_rare import RareJob, rare_jobs
from sharedsg.experiments.plots_classification import job_series, rare_figures

pytestmark = pytest.mark.needs_data("mnist")

TINY = ["experiment.kind=mnist_rare", "model.encoder=conv", "model.decoder=classification", "model.conv_channels=4",
        "model.slot_width=8", "sg.hidden=8", "learner.batch_size=8", "data.format=mnist", "experiment.iterations=10",
        "rare.period=3", "rare.rare_batch=5", "rare.test_every=4", "rare.test_images=40", "rare.checkpoint_every=4"]


def _cfg(*more):
    return load_config(None, TINY + list(more))


@pytest.fixture(scope="module", autouse=True)
def _mnist():
    RareJob(_cfg(), "baseline")  # the real files must be there: a missing dataset fails the tests


def test_batches_follow_the_schedule():
    job = RareJob(_cfg(), "proposed")
    for it in range(10):
        batch, rare = job.batch(it)
        assert rare == (it in (3, 6, 9))
        labels = set(batch.y.flatten().tolist())
        if rare:
            assert len(batch) == 5 and labels <= {5, 6, 7, 8, 9}
        else:
            assert len(batch) == 8 and labels <= {0, 1, 2, 3, 4}
    assert set(job.test_y.tolist()) <= {5, 6, 7, 8, 9}


def test_run_logs_norms_every_iteration_and_resumes(tmp_path):
    short = RareJob(_cfg("experiment.iterations=4"), "proposed")
    short.run(tmp_path / "proposed")
    messages = []
    res = RareJob(_cfg(), "proposed").run(tmp_path / "proposed", progress=messages.append)
    assert any("resumed at iteration 4" in m for m in messages)
    assert res["iterations"] == 10 and res["rare_iterations"] == [3, 6, 9]
    s = job_series(tmp_path / "proposed")
    assert sorted(s["grad_norm/oc/synthetic"]) == list(range(10))
    assert sorted(s["grad_norm/oc/true"]) == list(range(10))
    assert [i for i, v in sorted(s["schedule/rare"].items()) if v > 0] == [3, 6, 9]
    assert {3, 6, 9, 9} <= set(s["accuracy/rare_test"])  # tested right after every rare step
    assert 0.0 <= res["rare_test_accuracy"] <= 1.0 and res["rare_test_images"] == 4861
    assert 0.0 <= res["rare_test_accuracy_among_rare"] <= 1.0 and 1.0 <= res["rare_test_mean_rank"] <= 10.0
    assert sorted(res["test_context"]) == [0, 1, 2, 3, 4]
    assert res["oc_synthetic_norm_ratio"] > 0 and res["oc_true_norm_ratio"] > 0
    straight = RareJob(_cfg(), "proposed").run(tmp_path / "straight")
    assert straight["rare_test_accuracy"] == pytest.approx(res["rare_test_accuracy"])
    base = RareJob(_cfg(), "baseline").run(tmp_path / "baseline")
    paths = rare_figures(tmp_path, {"proposed": tmp_path / "proposed", "baseline": tmp_path / "baseline"})
    assert set(paths) == {"fig6", "fig7"} and all((tmp_path / p).stat().st_size > 1000 for p in
                                                   ("fig6_oc_gradients.png", "fig7_rare_accuracy.png"))
    assert base["method"] == "baseline"


def test_jobs_of_the_config():
    assert rare_jobs(_cfg()) == ["proposed", "baseline"]
    assert rare_jobs(_cfg("rare.methods=[baseline]")) == ["baseline"]


def test_rare_scores_count_ranks_and_the_rare_logits_only():
    import torch

    from sharedsg.experiments.mnist_rare import rare_scores

    logits = torch.full((2, 10), -1.0)
    logits[0, 2], logits[0, 7], logits[0, 6] = 3.0, 2.0, 1.0  # true 7: second overall, first among 5-9
    logits[1, 5] = 5.0  # true 5: first
    out = rare_scores(logits, torch.tensor([7, 5]))
    assert out["accuracy"] == 0.5 and out["accuracy_among_rare"] == 1.0 and out["mean_rank"] == 1.5
