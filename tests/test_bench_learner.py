"""``sharedsg bench learner``: reference and fast side by side, FLOP/s against the matmul rate."""

from __future__ import annotations

import json

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
