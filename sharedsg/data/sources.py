"""``make_source``: the :class:`BatchSource` a stream trains and evaluates on.

Trajectories (``sample``, ``sdd``, ``ind``; Sec. 4.2, 5.2): ``data_class`` cyclist or
pedestrian; batches of (B, obs_len, 2) observed and (B, pred_len, 2) future frames.
MNIST (Sec. 5.1): ``data_class`` common (0-4), rare (5-9) or all; Omniglot (Sec. 4.1):
``data_class`` train or test character pool; images as (B, 1, 1, 28, 28), labels (B, 1).

``split`` picks the pool ``next_batch`` draws from; ``eval_batches`` always yields
the held-out data of the class: the test tracks, the MNIST test images of the
class group, or the last ``round(20 * test_fraction)`` drawings of each Omniglot
character. Loaded data is cached per process, so streams share one copy.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np
import torch
from omegaconf import DictConfig

from sharedsg.config import cache_dir, data_root
from sharedsg.data.batch import Batch, BatchSource
from sharedsg.data.errors import DataError
from sharedsg.data.ind import find_ind_dir, load_ind
from sharedsg.data.mnist import CLASS_GROUPS, load_mnist
from sharedsg.data.omniglot import DRAWERS, POOLS, OmniglotData, OmniglotPool, load_omniglot
from sharedsg.data.sample import load_sample
from sharedsg.data.scaler import MinMaxScaler
from sharedsg.data.sdd import load_sdd
from sharedsg.data.tracks import CLASSES, TrackSet
from sharedsg.data.trajectories import SPLITS, WindowSet, WindowSpec, build_windows

TRAJECTORY_FORMATS = ("sample", "sdd", "ind")


def resolve_root(data_cfg: DictConfig) -> Path:
    """``data.root``, else ``$SHAREDSG_DATA``, else the per-user data folder (:func:`sharedsg.config.data_root`)."""
    return data_root(str(data_cfg.root))


def resolve_cache(data_cfg: DictConfig) -> Path:
    """``data.cache_dir``, else ``$SHAREDSG_CACHE``, else ``~/.cache/sharedsg``."""
    return cache_dir(str(data_cfg.cache_dir))


def window_spec(data_cfg: DictConfig) -> WindowSpec:
    return WindowSpec(
        obs_len=int(data_cfg.obs_len),
        pred_len=int(data_cfg.pred_len),
        frame_rate=float(data_cfg.frame_rate),
        window_stride=int(data_cfg.window_stride),
        test_fraction=float(data_cfg.test_fraction),
        max_train_tracks=int(data_cfg.max_train_tracks),
        split_seed=int(data_cfg.split_seed),
    )


@functools.lru_cache(maxsize=4)
def load_tracks(fmt: str, root: Path, sdd_fps: float, cache: Optional[Path] = None) -> TrackSet:
    """The tracks of a trajectory format, parsed once per process (SDD files once per ``cache``); skips are logged."""
    if fmt == "sample":
        tracks = load_sample()
    elif fmt == "sdd":
        tracks = load_sdd(root / "sdd", sdd_fps, cache)
    elif fmt == "ind":
        tracks = load_ind(find_ind_dir(root))
    else:
        raise DataError(f"'{fmt}' is not a trajectory format; use one of {', '.join(TRAJECTORY_FORMATS)}")
    tracks.report_skips()
    return tracks


@functools.lru_cache(maxsize=8)
def load_windows(fmt: str, root: Path, sdd_fps: float, spec: WindowSpec, cache: Optional[Path] = None) -> WindowSet:
    """Windows of every class and split, scaled by one scaler per dataset; cached per process."""
    return build_windows(load_tracks(fmt, root, sdd_fps, cache), spec)


@functools.lru_cache(maxsize=2)
def load_omniglot_cached(root: Path, cache: Path) -> OmniglotData:
    return load_omniglot(root / "omniglot", cache)


def check_data(data_cfg: DictConfig) -> None:
    """Load the dataset ``data.format`` names, as a run would (cached per process), so that a missing
    or damaged one is a one-line :class:`DataError` before the run starts anything or writes a file."""
    fmt, root = str(data_cfg.format), resolve_root(data_cfg)
    if fmt in TRAJECTORY_FORMATS:
        load_tracks(fmt, root, float(data_cfg.sdd_fps), resolve_cache(data_cfg) if fmt == "sdd" else None)
    elif fmt == "mnist":
        load_mnist(root / "mnist", "train")
        load_mnist(root / "mnist", "test")
    elif fmt == "omniglot":
        load_omniglot_cached(root, resolve_cache(data_cfg))


def _to_batch_x(images: np.ndarray) -> torch.Tensor:
    """(B, 28, 28) float32 -> (B, T=1, 1, 28, 28)."""
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).reshape(len(images), 1, 1, *images.shape[-2:])


class _Shuffler:
    """Indices into a pool of ``size`` items, epoch by epoch in a seeded random order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(size)
        self.position = 0

    def take(self, count: int) -> np.ndarray:
        parts = []
        while count > 0:
            if self.position == self.size:
                self.order, self.position = self.rng.permutation(self.size), 0
            step = min(count, self.size - self.position)
            parts.append(self.order[self.position : self.position + step])
            self.position += step
            count -= step
        return np.concatenate(parts)


def _eval_order(size: int, split_seed: int) -> np.ndarray:
    return np.random.default_rng([split_seed, 7919]).permutation(size)


class TrajectorySource:
    """Windows of one class; ``next_batch`` walks ``split`` in seeded epochs, ``eval_batches`` the test tracks."""

    def __init__(self, windows: WindowSet, data_class: str, split: str, seed: int) -> None:
        self.windows = windows.scaled[(data_class, split)]
        self.held_out = windows.scaled[(data_class, "test")]
        if len(self.windows) == 0:
            raise DataError(f"no {split} windows of class {data_class}; lower data.obs_len/pred_len or check data.format and data.root")
        self.scaler: MinMaxScaler = windows.scaler
        self.num_windows = int(len(self.windows))
        self.obs_len = windows.spec.obs_len
        self._shuffler = _Shuffler(self.num_windows, seed)
        self._eval_order = _eval_order(len(self.held_out), windows.spec.split_seed)

    def _batch(self, chosen: np.ndarray) -> Batch:
        x = torch.from_numpy(np.ascontiguousarray(chosen[:, : self.obs_len]))
        y = torch.from_numpy(np.ascontiguousarray(chosen[:, self.obs_len :]))
        return Batch(x, y)

    def next_batch(self, batch_size: int) -> Batch:
        return self._batch(self.windows[self._shuffler.take(batch_size)])

    def eval_batches(self, batch_size: int, max_batches: int) -> Iterator[Batch]:
        order = self._eval_order[: batch_size * max_batches]
        for start in range(0, len(order), batch_size):
            yield self._batch(self.held_out[order[start : start + batch_size]])


class ImagePool:
    """Images addressed by a flat index: MNIST arrays, or (class, drawing) pairs of an Omniglot pool."""

    def __init__(self, images: np.ndarray | OmniglotPool, labels: np.ndarray | None = None) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        if isinstance(self.images, OmniglotPool):
            return self.images.num_classes * self.images.samples_per_class
        return int(len(self.images))

    def get(self, index: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """float32 (n, 28, 28) in [0, 1] and int64 (n,) labels."""
        if isinstance(self.images, OmniglotPool):
            per_class = self.images.samples_per_class
            classes, samples = index // per_class, index % per_class
            return self.images.images(classes, samples[:, None])[:, 0], classes
        return self.images[index].astype(np.float32) / np.float32(255.0), self.labels[index].astype(np.int64)


class ImageSource:
    """Single images as one-step sequences: x (B, 1, 1, 28, 28) in [0, 1], y (B, 1) int64."""

    def __init__(self, train: ImagePool, held_out: ImagePool, seed: int, split_seed: int) -> None:
        if len(train) == 0:
            raise DataError("the selected image pool is empty; check data.format and the stream's data_class")
        self.train, self.held_out = train, held_out
        self.num_images = len(train)
        self._shuffler = _Shuffler(len(train), seed)
        self._eval_order = _eval_order(len(held_out), split_seed)

    @staticmethod
    def _batch(pool: ImagePool, index: np.ndarray) -> Batch:
        images, labels = pool.get(index)
        return Batch(_to_batch_x(images), torch.from_numpy(labels.astype(np.int64)).reshape(-1, 1))

    def next_batch(self, batch_size: int) -> Batch:
        return self._batch(self.train, self._shuffler.take(batch_size))

    def eval_batches(self, batch_size: int, max_batches: int) -> Iterator[Batch]:
        order = self._eval_order[: batch_size * max_batches]
        for start in range(0, len(order), batch_size):
            yield self._batch(self.held_out, order[start : start + batch_size])


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise DataError(f"{name} '{value}' is not one of {', '.join(choices)}")


def make_source(data_cfg: DictConfig, data_class: str, split: str, seed: int) -> BatchSource:
    """The batch source of one stream (see the module docstring for the shapes)."""
    _check_choice("split", split, SPLITS)
    fmt, root = str(data_cfg.format), resolve_root(data_cfg)
    if fmt in TRAJECTORY_FORMATS:
        _check_choice(f"data class for data.format={fmt}", data_class, CLASSES)
        windows = load_windows(fmt, root, float(data_cfg.sdd_fps), window_spec(data_cfg),
                               resolve_cache(data_cfg) if fmt == "sdd" else None)
        return TrajectorySource(windows, data_class, split, seed)
    if fmt == "mnist":
        _check_choice("data class for data.format=mnist", data_class, tuple(CLASS_GROUPS))
        chosen = load_mnist(root / "mnist", split).select(data_class)
        held_out = load_mnist(root / "mnist", "test").select(data_class)
        return ImageSource(ImagePool(chosen.images, chosen.labels), ImagePool(held_out.images, held_out.labels), seed, int(data_cfg.split_seed))
    if fmt == "omniglot":
        _check_choice("data class for data.format=omniglot", data_class, tuple(POOLS))
        data = load_omniglot_cached(root, resolve_cache(data_cfg))
        n_test = min(DRAWERS - 1, max(1, int(round(DRAWERS * float(data_cfg.test_fraction)))))
        drawers = {"train": np.arange(DRAWERS - n_test), "test": np.arange(DRAWERS - n_test, DRAWERS)}
        chosen_pool = ImagePool(OmniglotPool(data, data_class, drawers[split]))
        held_pool = ImagePool(OmniglotPool(data, data_class, drawers["test"]))
        return ImageSource(chosen_pool, held_pool, seed, int(data_cfg.split_seed))
    raise DataError(f"data.format '{fmt}' is not one of {', '.join(TRAJECTORY_FORMATS + ('mnist', 'omniglot'))}")
