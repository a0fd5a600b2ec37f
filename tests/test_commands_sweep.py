"""``sharedsg sweep`` refuses bad input in one line, exit 2, before anything is written: a sweep
without its data (on Ray as with ``--local``: no Ray retry lines or actor traceback, no job
folders), a ``--name`` that leaves the storage folder, a job whose checkpoint is damaged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = ["fewshot.methods=[proposed]", "fewshot.meta_iterations=1", "fewshot.test_episodes=2", "fewshot.queries=2",
        "model.conv_channels=4", "model.slot_width=8", "sg.hidden=8", "experiment.progress=false"]


def _sweep(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sharedsg.cli", "sweep", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))


def _tree(path: Path) -> list:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def _one_line_exit_2(proc: subprocess.CompletedProcess, *wanted: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert err.startswith("sharedsg: error: ") and "\n" not in err and "ray::" not in err, err
    for text in wanted:
        assert text in err, err
    return err


@pytest.mark.parametrize("local", [True, False])
def test_a_sweep_without_its_data_is_one_line_and_leaves_no_job_folder(tmp_path, local):
    """No needs_data marker: this test sees an empty data root."""
    configs = sorted(str(p) for p in (REPO / "configs" / "omniglot").glob("*.yaml"))
    proc = _sweep(tmp_path, *configs, *(["--local"] if local else []))
    _one_line_exit_2(proc, "omniglot: no Omniglot images", "sharedsg data download omniglot")
    assert proc.stdout == "" and _tree(tmp_path) == []


def test_a_sweep_name_that_leaves_the_storage_folder_is_refused(tmp_path):
    proc = _sweep(tmp_path, str(REPO / "configs" / "omniglot" / "5w1s.yaml"), "--local", "--name", "../escaped")
    _one_line_exit_2(proc, "--name: '../escaped' must be one folder name")
    assert _tree(tmp_path) == []


@pytest.mark.needs_data("omniglot")
def test_a_damaged_job_checkpoint_is_one_line_naming_it_and_is_not_overwritten(tmp_path):
    ckpt = tmp_path / "runs" / "omniglot_5w1s" / "main" / "5w1s-proposed" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"PK\x03\x04 cut short")
    before = _tree(tmp_path)
    proc = _sweep(tmp_path, str(REPO / "configs" / "omniglot" / "5w1s.yaml"), "--local", *TINY)
    _one_line_exit_2(proc, f"checkpoint {ckpt} is damaged", f"move it away (e.g. to {ckpt}.damaged)")
    assert _tree(tmp_path) == before and ckpt.read_bytes() == b"PK\x03\x04 cut short"
    ckpt.rename(ckpt.with_name("checkpoint.pt.damaged"))  # what the message says: the job starts afresh
    proc = _sweep(tmp_path, str(REPO / "configs" / "omniglot" / "5w1s.yaml"), "--local", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ckpt.is_file() and (ckpt.parent.parent / "results.json").is_file()
