"""``sharedsg run --local``: a small trajectory config trains on the shipped SDD sample."""

import json
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
