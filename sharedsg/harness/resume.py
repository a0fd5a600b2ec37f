"""A job's opening: resume from the checkpoint in its folder when there is one.

Every resumable job (an Omniglot setting x method, an MNIST method) keeps its whole progress in
``<its folder>/checkpoint.pt`` (:data:`~sharedsg.harness.jobs.CHECKPOINT`), so running it
again continues where it stopped (docs/design.md, "Layers": the job harness).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Protocol

from sharedsg import checkpoint
from sharedsg.harness.jobs import CHECKPOINT, Progress


class Resumable(Protocol):
    name: str

    def load(self, state: Dict[str, object]) -> None:
        """Take up the progress a checkpoint holds."""

    def position(self) -> str:
        """Where the job stands, for its progress line (e.g. 'iteration 4')."""


def resume(job: Resumable, directory: Path, progress: Progress = None) -> Path:
    """Load ``directory/checkpoint.pt`` into ``job`` if it exists, and say so through ``progress``
    ('<name>: resumed at <position>'); returns the checkpoint's path, where the job saves."""
    ckpt = Path(directory) / CHECKPOINT
    state = checkpoint.load(ckpt)
    if state is not None:
        job.load(state)
        if progress:
            progress(f"{job.name}: resumed at {job.position()}")
    return ckpt
