"""Sec. 4.2 end to end: `sharedsg run configs/trajectory_metatest.yaml` on a Ray started by the
command (methods x seeds as parallel Ray tasks), real SDD files, scaled down."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_data("sdd")

REPO = Path(__file__).resolve().parent.parent
METHODS = ["proposed", "baseline", "maml2", "maml1", "supervised"]


def test_metatest_cli_on_ray(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sharedsg.cli", "run", str(REPO / "configs" / "trajectory_metatest.yaml"),
         "data.obs_len=6", "data.pred_len=6", "model.slot_width=8", "model.slots=4", "model.encoder_hidden=8",
         "sg.hidden=16", "learner.batch_size=8", "metatest.pretrain_iterations=3", "metatest.adapt_iterations=4",
         "metatest.eval_windows=16", "metatest.seq2seq_hidden=8", "experiment.seeds=[0]",
         f"experiment.run_dir={tmp_path}", "experiment.run_name=r"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "trajectory_metatest" / "r"
    res = json.loads((run / "results.json").read_text())
    assert set(res["mse"]) == set(METHODS)
    for m in METHODS:
        assert len(res["curves"][m][0]) == 5  # before adaptation + after each of 4 steps
        for key in ("before_adaptation", "final", "auc"):
            assert math.isfinite(res["mse"][m][key]["mean"])
    assert math.isfinite(res["proposed_vs_baseline_final_reduction"])
    for name in ("fig4_metatest.png", "fig5_predictions.png"):
        assert (run / name).stat().st_size > 10_000
    assert "Trajectory meta-test" in proc.stdout
