"""A job's opening (harness/resume.py): a fresh folder starts from nothing; a checkpoint there is
loaded into the job and announced with where the job stands."""

from __future__ import annotations

from typing import Dict, List

from sharedsg import checkpoint
from sharedsg.harness.resume import resume


class Job:
    name = "5w1s-maml"

    def __init__(self) -> None:
        self.iteration = 0

    def load(self, state: Dict[str, object]) -> None:
        self.iteration = int(state["iteration"])

    def position(self) -> str:
        return f"iteration {self.iteration}"


def test_a_fresh_folder_starts_from_nothing_and_names_where_to_save(tmp_path):
    lines: List[str] = []
    job = Job()
    ckpt = resume(job, tmp_path / "job", lines.append)
    assert ckpt == tmp_path / "job" / "checkpoint.pt" and not ckpt.exists()
    assert job.iteration == 0 and lines == []


def test_a_checkpoint_is_loaded_and_announced(tmp_path):
    checkpoint.save(tmp_path / "checkpoint.pt", {"iteration": 7})
    lines: List[str] = []
    job = Job()
    assert resume(job, tmp_path, lines.append) == tmp_path / "checkpoint.pt"
    assert job.iteration == 7 and lines == ["5w1s-maml: resumed at iteration 7"]
    quiet = Job()
    resume(quiet, tmp_path)  # no progress callback: loaded all the same
    assert quiet.iteration == 7
