"""Atomic checkpoints of plain dicts, tensors and numbers (the SG server, stream actors and the
classification jobs all write theirs with :func:`save`), at a path or a URI of
``experiment.storage`` (:mod:`sharedsg.storage`).

Everything stored here loads with ``torch.load(weights_only=True)``: no dataclasses, no
OmegaConf objects, only dicts, lists, tuples, tensors, strings and numbers. The checkpoint is
serialised in memory first and then written all at once (a local file through a temporary file
moved into place with ``os.replace``; an object store in one put), so a crash mid-write leaves
the previous checkpoint intact.

:func:`save_json` / :func:`load_json` write and read plain JSON the same way: the SG service's
registry keeps its checkpoint in JSON so that its process never imports torch (which only
:func:`save` and :func:`load` import, when called).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, Optional

from sharedsg import storage
from sharedsg.errors import UserError


class DamagedCheckpoint(UserError):
    """A checkpoint file that exists but cannot be read."""


def _damaged(path: str | os.PathLike, exc: Exception) -> DamagedCheckpoint:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return DamagedCheckpoint(f"checkpoint {path} is damaged ({type(exc).__name__}: {reason}) and was left as it is; "
                             f"to start this job afresh, move it away (e.g. to {os.fspath(path)}.damaged) and run "
                             f"the same command again")


def save(path: str | os.PathLike, obj: Dict[str, Any]) -> str:
    """Write ``obj`` at ``path`` (a local path or a storage URI); returns the location."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return storage.write_bytes(path, buffer.getvalue())


def load(path: str | os.PathLike) -> Optional[Dict[str, Any]]:
    """The checkpoint at ``path``, or None when there is none."""
    data = storage.read_bytes(path)
    if data is None:
        return None
    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or not a checkpoint: RuntimeError, UnpicklingError, EOFError, ...
        raise _damaged(path, exc) from None


def save_json(path: str | os.PathLike, obj: Dict[str, Any]) -> str:
    """Write ``obj`` (JSON types only) at ``path``, all at once; returns the location."""
    return storage.write_bytes(path, json.dumps(obj, sort_keys=True).encode())


def load_json(path: str | os.PathLike) -> Optional[Dict[str, Any]]:
    """The JSON checkpoint at ``path``, or None when there is none."""
    data = storage.read_bytes(path)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _damaged(path, exc) from None
