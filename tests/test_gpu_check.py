"""``make gpu-check`` (tests/gpu/gpu_check.py) on this machine: without CUDA it says SKIP for the
cuda halves and its CPU path runs and passes, without importing Ray; without Omniglot (as this
unmarked test always sees it) the Omniglot job says SKIP and how to get the data, and the job
itself is tested where the data is."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_cpu_path(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        ["make", "--no-print-directory", "gpu-check", f"PYTHON={sys.executable}",
         f"GPU_CHECK_ARGS=--steps 3 --speed-steps 2 --iterations 4 --out {out}"],
        cwd=REPO, capture_output=True, text=True, timeout=400, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = json.loads(out.read_text())
    assert report["ray_imported"] is False
    lines = [line for line in proc.stdout.splitlines() if line.split(" ")[0] in ("PASS", "FAIL", "SKIP")]
    if not torch.cuda.is_available():
        assert lines[0].startswith("SKIP cuda: torch.cuda.is_available() is False")
        assert [line.split(":")[0] for line in lines[1:]] == [
            "PASS trajectory_step_and_sg_update", "PASS local_run_cpu", "SKIP omniglot_job_cpu", "PASS speed_cpu"]
        assert "no omniglot data: set SHAREDSG_DATA" in lines[3] and "omniglot_job_cpu" not in report
        runs = report["trajectory_step_and_sg_update"]["runs"]
        assert len(runs) == 2 and len(runs[0]["loss"]) == 3 and runs[0] == runs[1]  # CPU against itself: equal
        assert report["speed_cpu"]["steps_per_s"] > 0


@pytest.mark.needs_data("omniglot")
def test_gpu_check_omniglot_job_on_the_cpu(tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "gpu"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "tests" / "gpu"))
    assert gpu_check.omniglot_absent() is None
    result = gpu_check.omniglot_job("cpu", tmp_path)
    assert result["parameter_devices"] == ["cpu"] and 0.0 <= result["accuracy"] <= 1.0

