"""``sharedsg bench sg-fit``: target sets recorded from a real stream (the shipped SDD sample) and,
with Omniglot, the few-shot learner; predictors fitted offline and scored on the held-out sets."""

import pytest

from sharedsg.bench.sgfit import run_sg_fit_bench
from sharedsg.cli import build_parser, main


def _args(*argv):
    return build_parser().parse_args(["bench", "sg-fit", *argv])


def _check(out, task, settings, controllers):
    assert out[f"{task}/records"] == "8 train, 2 held out (the last)"
    assert all(v > 0 for v in out[f"{task}/target_rms"].values())
    for setting in settings:
        for c in controllers:
            m = out[f"{task}/{setting}/{c}"]
            assert set(m) == {"cosine", "rel_mse", "norm_ratio"}
            assert -1 <= m["cosine"] <= 1 and m["rel_mse"] >= 0 and m["norm_ratio"] > 0, (setting, c, m)


def test_trajectory_fit_reports_every_setting_per_controller():
    args = _args("--tasks", "trajectory", "--records", "10", "--passes", "1", "--settings", "configured,scaling,condition",
                 "--ceiling", "--ceiling-factor", "2", "--ceiling-hidden", "8", "--ceiling-passes", "1", "sg.hidden=8")
    out = run_sg_fit_bench(args)
    settings = ["configured", "target_scaling=none", "condition=h", "condition=y", "y_frame=data", "ceiling"]
    _check(out, "trajectory", settings, ("ic", "oc", "wc"))
    assert out["trajectory/ceiling/setting"] == "hidden=8, 18 train sets, 1 passes"
    assert not any(k.startswith("omniglot") for k in out)


@pytest.mark.needs_data("omniglot")
def test_fewshot_fit_records_the_support_steps_ic_and_oc():
    out = run_sg_fit_bench(_args("--tasks", "omniglot_5w1s", "--fewshot-records", "10", "--passes", "1",
                                 "--settings", "configured", "sg.hidden=8", "fewshot.meta_batch=2"))
    _check(out, "omniglot_5w1s", ["configured"], ("ic", "oc"))
    assert "omniglot_5w1s/configured/wc" not in out


def test_fewshot_part_is_one_line_when_omniglot_is_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAREDSG_DATA", str(tmp_path))
    out = run_sg_fit_bench(_args("--tasks", "omniglot_5w1s"))
    assert list(out) == ["omniglot_5w1s"] and out["omniglot_5w1s"].startswith("skipped: no Omniglot under")


def test_a_holdout_leaving_nothing_is_one_line_exit_2(capsys):
    assert main(["bench", "sg-fit", "--records", "5", "--holdout", "0.95"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--holdout" in err[0] and "Traceback" not in err[0]
