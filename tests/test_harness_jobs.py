"""The job harness in this process (``run --local``): results.json and the jobs' scalars in
TensorBoard while they run, each (tag, step) once when a run is resumed."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sharedsg.data.errors import DataError
from sharedsg.harness.jobs import JobSpec, logged_steps, mean_ci95, run_jobs


def _events(directory: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


class CountingJob:
    """A job of the harness's interface: ``iterations`` steps, a checkpoint and a progress line
    every 2, resumable from its checkpoint; it reads its own TensorBoard folder after each
    progress line (what a user watching TensorBoard would see then)."""

    iterations = 6

    def __init__(self, cfg, name):
        self.name, self.scalars, self.seen = name, [], []

    def run(self, directory: Path, progress=None):
        ckpt = Path(directory) / "checkpoint.json"
        start = 0
        if ckpt.is_file():
            state = json.loads(ckpt.read_text())
            start, self.scalars = state["iteration"], [tuple(s) for s in state["scalars"]]
        for it in range(start, self.iterations):
            self.scalars += [("loss/train", it, 1.0 / (it + 1)), ("accuracy/val", it, it / 10)]
            if (it + 1) % 2 == 0:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                ckpt.write_text(json.dumps({"iteration": it + 1, "scalars": self.scalars}))
                progress(f"{self.name}: iteration {it + 1}")
                self.seen.append(_events(Path(directory)).get("loss/train", []))
        self.scalars.append(("accuracy/test", self.iterations, 0.5))
        return {"job": self.name, "seen": self.seen, "scalars": self.scalars}


def test_scalars_reach_tensorboard_while_the_job_runs_and_once_after_a_resume(tmp_path):
    cfg = OmegaConf.create({"experiment": {"progress_every_s": 30.0}})
    specs = [JobSpec("a", cfg, CountingJob), JobSpec("b", cfg, CountingJob)]
    lines = []
    results = run_jobs(specs, str(tmp_path), log=lines.append)
    assert "a: iteration 2" in lines and "b: iteration 6" in lines
    for name in ("a", "b"):
        seen = results["jobs"][name]["seen"]
        # after the progress line of iteration 2, 4, 6: the loss of iterations 0-1, 0-3, 0-5 is in TensorBoard
        assert [[s for s, _ in ev] for ev in seen] == [[0, 1], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]
        ev = _events(tmp_path / name)
        assert ev["loss/train"] == [(s, pytest.approx(1.0 / (s + 1))) for s in range(6)]
        assert ev["accuracy/test"] == [(6, 0.5)]
    assert json.loads((tmp_path / "results.json").read_text())["jobs"]["a"]["job"] == "a"
    # the same plan again resumes from the checkpoints: nothing new, and no scalar twice
    run_jobs(specs, str(tmp_path), log=lines.append)
    for name in ("a", "b"):
        ev = _events(tmp_path / name)
        assert [s for s, _ in ev["loss/train"]] == list(range(6)) and [s for s, _ in ev["accuracy/val"]] == list(range(6))
        assert ev["accuracy/test"] == [(6, 0.5)]
    assert logged_steps(tmp_path / "a") == {"loss/train": 5, "accuracy/val": 5, "accuracy/test": 6}
    assert logged_steps(tmp_path / "missing") == {}


class RefusedJob:
    """A job whose data is refused before it starts."""

    def __init__(self, cfg, name):
        self.scalars = []

    def run(self, directory: Path, progress=None):
        raise DataError(f"{directory}: no data; get it first")


def test_a_job_that_fails_before_it_starts_leaves_no_folder(tmp_path):
    cfg = OmegaConf.create({"experiment": {"progress_every_s": 30.0}})
    specs = [JobSpec("a", cfg, CountingJob), JobSpec("refused", cfg, RefusedJob), JobSpec("c", cfg, CountingJob)]
    with pytest.raises(DataError, match="refused: no data"):
        run_jobs(specs, str(tmp_path), log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "results.json"]
    assert list(json.loads((tmp_path / "results.json").read_text())["jobs"]) == ["a"]


def test_mean_ci95():
    mean, ci = mean_ci95([1.0, 0.0, 1.0, 0.0])
    assert mean == 0.5 and abs(ci - 1.96 * (1 / 3) ** 0.5 / 2) < 1e-12
    assert mean_ci95([0.7])[0] == 0.7
