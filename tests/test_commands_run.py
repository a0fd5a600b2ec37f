"""``sharedsg run``: a small trajectory config trains on the shipped SDD sample (``--local``); a
name that would leave the storage folder, or missing or damaged data, is one line and exit 2
with nothing written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parent.parent


def _scalars(run_dir: Path, stream: str, tag: str):
    acc = EventAccumulator(str(run_dir / stream))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


@pytest.mark.parametrize("mixing", ["bp_only", "sum"])
def test_local_run_trains(tmp_path, mixing):
    proc = subprocess.run(
        [sys.executable, "-m", "sharedsg.cli", "run", str(REPO / "configs" / "local_small.yaml"), "--local",
         f"learner.mixing={mixing}", "experiment.iterations=80", "experiment.eval_every=40",
         f"experiment.run_dir={tmp_path}", "experiment.run_name=r", "experiment.progress=false"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "local_small" / "r"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["streams"]["cyclist"]["steps"] == 80
    losses = _scalars(run_dir, "cyclist", "loss/train")
    assert len(losses) == 80
    start, end = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    print(f"{mixing}: mean train loss of the first 10 steps {start:.4f}, of the last 10 {end:.4f}")
    assert end < start
    for tag in ("grad_norm/oc/synthetic", "sg/wc/cosine", "memory/attention_entropy", "loss/eval", "ade/eval"):
        assert _scalars(run_dir, "cyclist", tag), tag


def _sharedsg(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The ``sharedsg`` command a user runs, in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "sharedsg.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO), **env))


def _tree(path: Path) -> list:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def _one_line_exit_2(proc: subprocess.CompletedProcess, *wanted: str) -> None:
    err = proc.stderr.strip()
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    assert err.startswith("sharedsg: error: ") and "\n" not in err and "Traceback" not in err, err
    for text in wanted:
        assert text in err, err


@pytest.mark.parametrize("override,key", [
    ("experiment.name=..", "experiment.name: '..'"),
    ("experiment.run_name=../escaped", "experiment.run_name: '../escaped'"),
    ("experiment.run_name=escaped/deeper", "experiment.run_name: 'escaped/deeper'"),
    ("experiment.name=/tmp/abs", "experiment.name: '/tmp/abs'"),
    ("streams={../escaped: {data_class: cyclist}}", "the stream name '../escaped'"),
])
def test_a_name_that_leaves_the_storage_folder_is_refused_before_anything_is_written(tmp_path, override, key):
    work = tmp_path / "work"
    work.mkdir()
    proc = _sharedsg(work, "run", str(REPO / "configs" / "local_small.yaml"), "--local", override)
    _one_line_exit_2(proc, key, "must be", "one folder name")
    assert _tree(tmp_path) == ["work"]


@pytest.mark.parametrize("local", [True, False])
def test_a_run_without_its_data_is_one_line_and_writes_nothing(tmp_path, local):
    """data.format=sdd with an empty data root (this test has no needs_data marker); on Ray the
    driver finds it before starting Ray."""
    proc = _sharedsg(tmp_path, "run", str(REPO / "configs" / "knowledge_sharing.yaml"), "data.format=sdd",
                     *(["--local"] if local else []))
    _one_line_exit_2(proc, "sdd: no <scene>/<videoN>/annotations.txt files", "SHAREDSG_DATA")
    assert _tree(tmp_path) == []


def test_damaged_data_is_one_line_and_writes_nothing(tmp_path):
    scene = tmp_path / "data" / "sdd" / "gates" / "video0"
    scene.mkdir(parents=True)
    (scene / "annotations.txt").write_text("1 2 3\n")
    (tmp_path / "data" / "sdd" / "estimated_scales.yaml").write_text("gates: {video0: {scale: 0.04}}\n")
    before = _tree(tmp_path)
    proc = _sharedsg(tmp_path, "run", str(REPO / "configs" / "knowledge_sharing.yaml"), "data.format=sdd",
                     f"data.root={tmp_path / 'data'}")
    _one_line_exit_2(proc, "annotations.txt")
    assert _tree(tmp_path) == before
