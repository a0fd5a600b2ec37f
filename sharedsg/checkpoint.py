"""Atomic checkpoints of plain dicts, tensors and numbers (the SG server, stream actors and the
classification jobs all write theirs with :func:`save`), at a path or a URI of
``experiment.storage`` (:mod:`sharedsg.storage`).

Everything stored here loads with ``torch.load(weights_only=True)``: no dataclasses, no
OmegaConf objects, only dicts, lists, tuples, tensors, strings and numbers. The checkpoint is
serialised in memory first and then written all at once (a local file through a temporary file
moved into place with ``os.replace``; an object store in one put), so a crash mid-write leaves
the previous checkpoint intact.
"""

from __future__ import annotations

import io
import os
from typing import Any, Dict, Optional

import torch

from sharedsg import storage


def save(path: str | os.PathLike, obj: Dict[str, Any]) -> str:
    """Write ``obj`` at ``path`` (a local path or a storage URI); returns the location."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return storage.write_bytes(path, buffer.getvalue())


def load(path: str | os.PathLike) -> Optional[Dict[str, Any]]:
    """The checkpoint at ``path``, or None when there is none."""
    data = storage.read_bytes(path)
    if data is None:
        return None
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
