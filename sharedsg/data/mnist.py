"""MNIST for the rare-class ablation (paper Sec. 5.1).

:func:`read_idx` parses an IDX file (gzip or raw) and checks the MD5 of the
decompressed bytes against the canonical value, so a corrupted or truncated file
never becomes a silently smaller dataset. :class:`RareClassSchedule` says which
classes a training iteration draws from: classes 0-4 at every iteration and, at
every 500th iteration, a batch of 10 images of classes 5-9. The test set of the
ablation is the unseen test images of classes 5-9 (:meth:`MnistData.select`).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np

from sharedsg.data.errors import DataError, missing_dataset
from sharedsg.data.integrity import MNIST_RAW_MD5

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
COMMON_CLASSES: Tuple[int, ...] = (0, 1, 2, 3, 4)
RARE_CLASSES: Tuple[int, ...] = (5, 6, 7, 8, 9)
CLASS_GROUPS = {"common": COMMON_CLASSES, "rare": RARE_CLASSES, "all": COMMON_CLASSES + RARE_CLASSES}


def _raw_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); run 'sharedsg data download mnist'") from None
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupted or truncated gzip ({exc}); download the file again") from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (``.gz`` or raw) -> uint8 (N, 28, 28) images or (N,) labels.

    Files with a canonical MNIST name have the MD5 of their decompressed bytes checked.
    """
    raw = _raw_bytes(path)
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    expected_md5 = MNIST_RAW_MD5.get(name)
    if expected_md5 is not None and hashlib.md5(raw).hexdigest() != expected_md5:
        raise DataError(f"{path}: MD5 of the decompressed data is not the canonical {expected_md5}; the file is damaged, download it again")
    if len(raw) < 8:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header; download the file again")
    magic, count = (int(v) for v in np.frombuffer(raw[:8], dtype=">u4"))
    if magic == IMAGE_MAGIC:
        if len(raw) < 16:
            raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX image header (16 bytes); download the file again")
        rows, cols = (int(v) for v in np.frombuffer(raw[8:16], dtype=">u4"))
        if (rows, cols) != (28, 28):
            raise DataError(f"{path}: IDX header says {rows}x{cols} images, MNIST images are 28x28; download the file again")
        shape, offset = (count, rows, cols), 16
    elif magic == LABEL_MAGIC:
        shape, offset = (count,), 8
    else:
        raise DataError(f"{path}: IDX magic number {magic} is neither {IMAGE_MAGIC} (images) nor {LABEL_MAGIC} (labels)")
    size = int(np.prod(shape))
    if len(raw) - offset != size:
        raise DataError(f"{path}: header promises {size} bytes of data but the file holds {len(raw) - offset}; download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def find_idx(directory: Path, name: str) -> Path:
    """``name.gz`` or raw ``name`` under ``directory``."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    raise missing_dataset("mnist", directory, f"neither {name}.gz nor {name} found")


@dataclass(frozen=True)
class MnistData:
    """One MNIST split: ``images`` uint8 (N, 28, 28) with ink = 255, ``labels`` uint8 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def select(self, group: str) -> "MnistData":
        """The images of a class group: 'common' (0-4), 'rare' (5-9) or 'all'."""
        if group not in CLASS_GROUPS:
            raise DataError(f"unknown MNIST class group '{group}'; use common (0-4), rare (5-9) or all")
        keep = np.isin(self.labels, CLASS_GROUPS[group])
        return MnistData(self.images[keep], self.labels[keep])


@functools.lru_cache(maxsize=4)
def load_mnist(directory: Path, split: str) -> MnistData:
    """The 'train' (60,000) or 'test' (10,000) split, read once per process."""
    if split not in FILES:
        raise DataError(f"unknown MNIST split '{split}'; use train or test")
    image_name, label_name = FILES[split]
    images = read_idx(find_idx(directory, image_name))
    labels = read_idx(find_idx(directory, label_name))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{directory}: {image_name} holds {len(images)} images but {label_name} {len(labels)} labels")
    if labels.max(initial=0) > 9:
        raise DataError(f"{directory}: {label_name} has label {int(labels.max())}, MNIST labels are 0..9")
    return MnistData(images, labels)


@dataclass(frozen=True)
class RareClassSchedule:
    """Sec. 5.1: common classes at every iteration, a rare batch at every ``period``-th iteration.

    Rare iterations are ``period``, ``2 * period``, ... (iteration 0 is common).
    """

    period: int = 500
    rare_batch: int = 10
    common_classes: Tuple[int, ...] = COMMON_CLASSES
    rare_classes: Tuple[int, ...] = RARE_CLASSES

    def __post_init__(self) -> None:
        if self.period < 1 or self.rare_batch < 1:
            raise DataError(f"RareClassSchedule needs period >= 1 and rare_batch >= 1, got {self.period}, {self.rare_batch}")
        if set(self.common_classes) & set(self.rare_classes):
            raise DataError("RareClassSchedule: common and rare classes overlap")

    def is_rare(self, iteration: int) -> bool:
        """True when ``iteration`` feeds the rare batch."""
        return iteration > 0 and iteration % self.period == 0

    def classes(self, iteration: int) -> Tuple[int, ...]:
        """The classes the batch of ``iteration`` is drawn from."""
        return self.rare_classes if self.is_rare(iteration) else self.common_classes

    def batch_size(self, iteration: int, common_batch: int) -> int:
        """``rare_batch`` at rare iterations, else ``common_batch``."""
        return self.rare_batch if self.is_rare(iteration) else common_batch

    def rare_iterations(self, iterations: int) -> list[int]:
        """The rare iterations among ``range(iterations)``."""
        return list(range(self.period, iterations, self.period))
