"""Where the runtime's checkpoints live in a run directory; written with :mod:`sharedsg.checkpoint`.

Every path the SG service and the streams write comes from a function here, so the storage
location can be swapped in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from sharedsg.checkpoint import load, save

__all__ = ["checkpoint_dir", "server_checkpoint", "group_checkpoint", "stream_checkpoint", "load", "save"]


def checkpoint_dir(run_path: str | os.PathLike) -> Path:
    return Path(run_path) / "checkpoints"


def server_checkpoint(run_path: str | os.PathLike) -> Path:
    """The SG service's registry: its groups (name, model) and streams, and the push totals."""
    return checkpoint_dir(run_path) / "server.pt"


def group_checkpoint(run_path: str | os.PathLike, group: str) -> Path:
    """One SG group actor: weights, optimiser, version, push ledgers, counters."""
    return checkpoint_dir(run_path) / f"sg-{group}.pt"


def stream_checkpoint(run_path: str | os.PathLike, stream: str) -> Path:
    return checkpoint_dir(run_path) / f"stream-{stream}.pt"
