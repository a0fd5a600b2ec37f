"""Atomic checkpoints of plain dicts, tensors and numbers (the SG server, stream actors and the
classification jobs all write theirs with :func:`save`).

Everything stored here loads with ``torch.load(weights_only=True)``: no dataclasses, no
OmegaConf objects, only dicts, lists, tuples, tensors, strings and numbers. A write goes to a
temporary file in the same directory and is moved into place with ``os.replace``, so a crash
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch


def save(path: str | os.PathLike, obj: Dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def load(path: str | os.PathLike) -> Optional[Dict[str, Any]]:
    """The checkpoint at ``path``, or None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
