"""Where the runtime's checkpoints live in a run directory; written with :mod:`sharedsg.checkpoint`."""

from __future__ import annotations

import os
from pathlib import Path

from sharedsg.checkpoint import load, save

__all__ = ["checkpoint_dir", "server_checkpoint", "stream_checkpoint", "load", "save"]


def checkpoint_dir(run_path: str | os.PathLike) -> Path:
    return Path(run_path) / "checkpoints"


def server_checkpoint(run_path: str | os.PathLike) -> Path:
    return checkpoint_dir(run_path) / "server.pt"


def stream_checkpoint(run_path: str | os.PathLike, stream: str) -> Path:
    return checkpoint_dir(run_path) / f"stream-{stream}.pt"
