"""Where the runtime's checkpoints live in a run's storage location (a path or a URI,
:mod:`sharedsg.storage`); written with :mod:`sharedsg.checkpoint`.

Every path the SG service and the streams write comes from a function here.
"""

from __future__ import annotations

import os

from sharedsg.checkpoint import load, load_json, save, save_json
from sharedsg.storage import join

__all__ = ["checkpoint_dir", "server_checkpoint", "group_checkpoint", "stream_checkpoint", "load", "save",
           "load_json", "save_json"]


def checkpoint_dir(run_path: str | os.PathLike) -> str:
    return join(run_path, "checkpoints")


def server_checkpoint(run_path: str | os.PathLike) -> str:
    """The SG service's registry: its groups (name, model) and streams, and the push totals (JSON)."""
    return join(checkpoint_dir(run_path), "server.json")


def group_checkpoint(run_path: str | os.PathLike, group: str) -> str:
    """One SG group actor: weights, optimiser, version, push ledgers, counters."""
    return join(checkpoint_dir(run_path), f"sg-{group}.pt")


def stream_checkpoint(run_path: str | os.PathLike, stream: str) -> str:
    return join(checkpoint_dir(run_path), f"stream-{stream}.pt")
