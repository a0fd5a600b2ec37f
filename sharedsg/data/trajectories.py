"""Fixed-length windows of trajectories, split by track and scaled (paper Sec. 4.2, 5.2).

Each track is resampled to one frame rate (inD's 25 Hz by default), cut into
windows of ``obs_len`` observed + ``pred_len`` future (x, y) frames, and assigned
as a whole to training or test, so no track gives windows to both. The scaler is
fitted on the training windows of both classes together, so cyclists and
pedestrians share one coordinate frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from sharedsg.data.errors import DataError
from sharedsg.data.scaler import MinMaxScaler
from sharedsg.data.tracks import CLASSES, TrackSet, resample, windows

SPLITS: Tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class WindowSpec:
    """How tracks become windows; mirrors the trajectory fields of ``DataConfig``."""

    obs_len: int = 50
    pred_len: int = 50
    frame_rate: float = 25.0
    window_stride: int = 50
    test_fraction: float = 0.2
    max_train_tracks: int = 0  # 0 = all training tracks of each class
    split_seed: int = 0


@dataclass(frozen=True)
class WindowSet:
    """``scaled[(data_class, split)]``: float32 (N, obs_len + pred_len, 2) in scaled coordinates."""

    spec: WindowSpec
    scaled: Dict[Tuple[str, str], np.ndarray]
    track_keys: Dict[Tuple[str, str], Tuple[str, ...]]  # the tracks each (class, split) came from
    scaler: MinMaxScaler

    def num_windows(self, data_class: str, split: str) -> int:
        return int(len(self.scaled[(data_class, split)]))


def _track_windows(track_segments: Tuple[np.ndarray, ...], fps: float, spec: WindowSpec) -> np.ndarray:
    length = spec.obs_len + spec.pred_len
    parts = [windows(resample(s, fps, spec.frame_rate), length, spec.window_stride) for s in track_segments]
    return np.concatenate(parts) if parts else np.zeros((0, length, 2))


def split_tracks(keys: List[str], spec: WindowSpec, class_index: int) -> Tuple[List[str], List[str]]:
    """Deterministic (train, test) partition of sorted track keys by ``split_seed``.

    ``round(test_fraction * n)`` tracks (at least one when n >= 2) go to test;
    ``max_train_tracks`` > 0 keeps only that many training tracks.
    """
    order = sorted(keys)
    rng = np.random.default_rng([spec.split_seed, class_index])
    shuffled = [order[i] for i in rng.permutation(len(order))]
    n_test = max(1, int(round(spec.test_fraction * len(order)))) if len(order) >= 2 else 0
    train, test = shuffled[n_test:], shuffled[:n_test]
    if spec.max_train_tracks > 0:
        train = train[: spec.max_train_tracks]
    return sorted(train), sorted(test)


def build_windows(tracks: TrackSet, spec: WindowSpec) -> WindowSet:
    """Window, split and scale every cyclist and pedestrian track of ``tracks``."""
    per_track: Dict[str, np.ndarray] = {}
    keys_of: Dict[str, List[str]] = {c: [] for c in CLASSES}
    for track in tracks.tracks:
        if track.key in per_track:
            raise DataError(f"{tracks.source}: track {track.key} appears twice; track keys must be unique")
        found = _track_windows(track.segments, track.fps, spec)
        if len(found):  # tracks shorter than one window give nothing to either split
            per_track[track.key] = found
            keys_of[track.data_class].append(track.key)
    metres: Dict[Tuple[str, str], np.ndarray] = {}
    chosen: Dict[Tuple[str, str], Tuple[str, ...]] = {}
    length = spec.obs_len + spec.pred_len
    for class_index, data_class in enumerate(CLASSES):
        for split, keys in zip(SPLITS, split_tracks(keys_of[data_class], spec, class_index)):
            chosen[(data_class, split)] = tuple(keys)
            parts = [per_track[k] for k in keys]
            metres[(data_class, split)] = np.concatenate(parts) if parts else np.zeros((0, length, 2))
    scaler = MinMaxScaler.fit(np.concatenate([metres[(c, "train")] for c in CLASSES]))
    scaled = {key: scaler.transform(value) for key, value in metres.items()}
    return WindowSet(spec=spec, scaled=scaled, track_keys=chosen, scaler=scaler)
