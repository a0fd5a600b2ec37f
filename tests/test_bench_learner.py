"""``sharedsg bench learner``: reference and fast side by side, FLOP/s against the matmul rate."""

from __future__ import annotations

import json

import pytest

from sharedsg.cli import main


def test_bench_learner_prints_both_implementations(capsys):
    assert main(["bench", "learner", "--json", "--rounds", "1", "--steps", "1", "--cases", "trajectory,sg_update",
                 "--batch-sizes", "4", "data.obs_len=6", "data.pred_len=6", "model.slot_width=8",
                 "model.encoder_hidden=8", "sg.hidden=8"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["matmul_gflop_per_s"] > 0
    for case in ("trajectory/bp_only/b4", "trajectory/sum/b4", "sg_update/b32"):
        row = out[case]
        assert row["flop_per_step"] > 0
        for impl in ("reference", "fast"):
            assert row[f"{impl}_steps_per_s"] > 0 and 0 < row[f"{impl}_fraction_of_matmul_peak"] < 1
        assert row["fast_over_reference"] > 0


def test_bench_learner_times_the_few_shot_step_reference_and_fast(capsys):
    assert main(["bench", "learner", "--json", "--rounds", "1", "--steps", "1", "--cases", "fewshot",
                 "--fewshot-settings", "5w2s", "model.conv_channels=4", "model.slot_width=8", "sg.hidden=8",
                 "fewshot.meta_batch=2", "fewshot.meta_batches={maml: 2, protonet: 1}", "fewshot.queries=1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    row = out["fewshot_proposed/5w2s"]
    assert row["flop_per_step"] > 0 and row["fast_over_reference"] > 0
    assert all(row[f"{i}_steps_per_s"] > 0 for i in ("reference", "fast"))
    assert set(out["fewshot/5w1s"]) == {"proposed", "baseline", "maml", "protonet"}


def test_bench_learner_rejects_a_bad_few_shot_setting(capsys):
    assert main(["bench", "learner", "--cases", "fewshot", "--fewshot-settings", "5way"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5way" in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("option, value, said", [("--cases", "trajectory,nope", "nope"),
                                                 ("--batch-sizes", "16,0", "0 is out of range"),
                                                 ("--rounds", "x", "'x' is not an integer")])
def test_bench_learner_rejects_bad_options_before_running(capsys, option, value, said):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "learner", option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert said in err.strip().splitlines()[-1] and option in err and "Traceback" not in err
