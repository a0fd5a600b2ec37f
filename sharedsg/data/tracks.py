"""Trajectory tracks and the operations on them (paper Sec. 4.2, 5.2).

Every trajectory loader (SDD, inD, the shipped sample) returns a :class:`TrackSet`:
per-track centre positions in metres, cut into segments of consecutive frames (a
gap in the frames starts a new segment, so nothing is interpolated across it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

CLASSES: Tuple[str, ...] = ("cyclist", "pedestrian")
log = logging.getLogger("sharedsg.data")


@dataclass(frozen=True)
class Track:
    """One road user: ``segments`` of (T, 2) float64 positions in metres, one row per frame at ``fps``."""

    key: str  # unique within a dataset, e.g. 'sdd/gates/video2/17' or 'ind/07/123'
    data_class: str  # cyclist | pedestrian
    segments: Tuple[np.ndarray, ...]
    fps: float


@dataclass
class TrackSet:
    """The tracks of one dataset, plus what was left out and why (reported, never silent)."""

    source: str
    tracks: List[Track]
    track_counts: Dict[str, int]  # tracks per class in the files, before anything is dropped
    skipped: Dict[str, int] = field(default_factory=dict)  # reason -> count

    def report_skips(self) -> None:
        """Log every documented skip with its count (a WARNING the user sees on stderr)."""
        for reason, count in sorted(self.skipped.items()):
            if count:
                log.warning("%s: skipped %d %s", self.source, count, reason)


def split_at_gaps(frames: np.ndarray, xy: np.ndarray) -> List[np.ndarray]:
    """Cut one track (frames strictly increasing) into runs of consecutive frames."""
    breaks = np.nonzero(np.diff(frames) > 1)[0] + 1
    return [part for part in np.split(xy, breaks) if len(part)]


def resample(xy: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """Linear interpolation of a (T, 2) segment from ``source_fps`` to ``target_fps``."""
    if abs(source_fps - target_fps) < 1e-9 or len(xy) < 2:
        return xy
    duration = (len(xy) - 1) / source_fps
    times = np.arange(int(np.floor(duration * target_fps + 1e-9)) + 1) / target_fps
    source_times = np.arange(len(xy)) / source_fps
    return np.stack([np.interp(times, source_times, xy[:, axis]) for axis in range(2)], axis=1)


def windows(xy: np.ndarray, length: int, stride: int) -> np.ndarray:
    """(W, length, 2) windows starting at 0, stride, 2 * stride, ... that fit in the segment."""
    if len(xy) < length:
        return np.zeros((0, length, 2), dtype=xy.dtype)
    starts = np.arange(0, len(xy) - length + 1, stride)
    return xy[starts[:, None] + np.arange(length)[None, :]]
