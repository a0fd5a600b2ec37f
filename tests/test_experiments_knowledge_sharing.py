"""Sec. 5.2 end to end: `sharedsg run configs/knowledge_sharing.yaml` on a Ray started by the
command, real SDD files, scaled down by key=value overrides."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.needs_data("sdd")

REPO = Path(__file__).resolve().parent.parent
TINY = ["data.format=sdd", "data.obs_len=6", "data.pred_len=6", "model.slot_width=8", "model.slots=4",
        "model.encoder_hidden=8", "sg.hidden=16", "learner.batch_size=8", "experiment.iterations=12",
        "experiment.eval_every=4", "experiment.eval_batches=2", "experiment.seeds=[0,1]",
        "streams.pedestrian.schedule.start=4", "streams.pedestrian.schedule.every=4",
        "streams.pedestrian.schedule.batch_size=3", "experiment.progress=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ks")
    proc = subprocess.run(
        [sys.executable, "-m", "sharedsg.cli", "run", str(REPO / "configs" / "knowledge_sharing.yaml"), *TINY,
         f"experiment.run_dir={out}", "experiment.run_name=r"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Knowledge sharing" in proc.stdout and "tensorboard --logdir" in proc.stdout
    return out / "knowledge_sharing" / "r"


def _acc(path: Path) -> EventAccumulator:
    acc = EventAccumulator(str(path))
    acc.Reload()
    return acc


@pytest.mark.slow  # reads run_dir: the CLI starting Ray in a subprocess
def test_results_json_has_both_arms_and_roles(run_dir):
    res = json.loads((run_dir / "results.json").read_text())
    assert res["seeds"] == [0, 1]
    for role in ("cyclist", "pedestrian"):
        for arm in ("shared", "separate"):
            for key in ("final", "auc"):
                stats = res["mse"][role][arm][key]
                assert len(stats["values"]) == 2
                assert all(math.isfinite(v) for v in stats["values"] + [stats["mean"], stats["std"]])
    assert res["updates"]["pedestrian"] == [4, 8]


@pytest.mark.slow  # reads run_dir: the CLI starting Ray in a subprocess
def test_figures_written(run_dir):
    for name in ("fig8_learning_curves.png", "fig9_trajectories.png"):
        assert (run_dir / name).stat().st_size > 10_000


@pytest.mark.slow  # reads run_dir: the CLI starting Ray in a subprocess
@pytest.mark.parametrize("seed", [0, 1])
def test_events_per_stream_and_pedestrian_schedule(run_dir, seed):
    for arm in ("shared", "separate"):
        for role in ("cyclist", "pedestrian"):
            acc = _acc(run_dir / f"seed{seed}" / f"{arm}-{role}")
            tags = set(acc.Tags()["scalars"])
            for tag in ("loss/train", "loss/eval", "ade/train", "grad_norm/oc/synthetic", "sg/wc/cosine",
                        "sg/wc/rel_mse", "sg/ic/norm_ratio", "memory/attention_entropy", "sg/version_lag", "perf/steps_per_s"):
                assert tag in tags, (arm, role, tag)
            steps = [e.step for e in acc.Scalars("loss/train")]
            assert steps == (list(range(12)) if role == "cyclist" else [4, 8]), (arm, role, steps)


@pytest.mark.slow  # reads run_dir: the CLI starting Ray in a subprocess
def test_tensorboard_overlay_has_both_arms(run_dir):
    for arm in ("shared", "separate"):
        acc = _acc(run_dir / "overlay" / arm)
        assert len(acc.Scalars("knowledge_sharing/pedestrian_mse_eval")) == 3  # evaluations at 3, 7, 11
    marks = _acc(run_dir / "overlay" / "schedule").Scalars("schedule/pedestrian_update")
    assert [e.step for e in marks] == [4, 8]


def test_sg_sharing_picks_one_arm_and_its_groups(tmp_path):
    """`sharedsg run configs/knowledge_sharing.yaml sg.sharing=separate` runs the separate arm only,
    one SG group per stream (the README's example), here in one process."""
    from sharedsg.cli import main

    args = ["run", str(REPO / "configs" / "knowledge_sharing.yaml"), "--local", *TINY, "experiment.seeds=[0]",
            "experiment.iterations=5", "sg.sharing=separate", f"experiment.run_dir={tmp_path}", "experiment.run_name=r"]
    assert main(args) == 0
    res = json.loads((tmp_path / "knowledge_sharing" / "r" / "results.json").read_text())
    assert set(res["mse"]["pedestrian"]) == {"separate"} and set(res["mse"]["cyclist"]) == {"separate"}
    assert set(res["sg_versions"]["0"]) == {"separate-cyclist", "separate-pedestrian"}
    assert sorted(p.name for p in (tmp_path / "knowledge_sharing" / "r" / "seed0").iterdir()) == [
        "separate-cyclist", "separate-pedestrian"]
    # the SG fit per stream and controller: the mean of the TensorBoard step values from iteration 2.5 on
    acc = _acc(tmp_path / "knowledge_sharing" / "r" / "seed0" / "separate-cyclist")
    fit = res["sg_fit"]["0"]["separate-cyclist"]
    for c in ("ic", "oc", "wc"):
        for metric in ("cosine", "rel_mse", "norm_ratio"):
            late = [e.value for e in acc.Scalars(f"sg/{c}/{metric}") if e.step >= 2.5]
            assert len(late) == 2 and fit[c][metric] == pytest.approx(sum(late) / 2, rel=1e-5), (c, metric)


def test_sg_sharing_both_is_refused_outside_knowledge_sharing(tmp_path, capsys):
    from sharedsg.cli import main

    assert main(["run", str(REPO / "configs" / "local_small.yaml"), "--local", "sg.sharing=both",
                 f"experiment.run_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sg.sharing" in err[0] and "knowledge_sharing" in err[0]
    assert not any(tmp_path.iterdir())
