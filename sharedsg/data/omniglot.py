"""Omniglot for few-shot classification (paper Sec. 4.1).

Reads the npz layout (``images_background.npz`` / ``images_evaluation.npz``, as in
``sharedsg data download omniglot``) or the original release (``images_background.zip`` /
``images_evaluation.zip`` with ``<alphabet>/characterNN/<char_id>_<drawer>.png``),
resizes every 105x105 drawing to 28x28 with ink = 1 (area averaging) and keeps the
result in an on-disk cache so later loads of all 32,460 images take well under 5 s.

The split of the paper is the Vinyals one: 1200 training characters (Vinyals
train + val) and the 423 others for testing. Each character in each of the four
rotations (multiples of 90 degrees) is a class of its own (see :class:`OmniglotPool`).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from sharedsg.data.errors import DataError, missing_dataset

NUM_CHARACTERS = 1623
DRAWERS = 20
SOURCE_SIZE = 105
IMAGE_SIZE = 28
ROTATIONS = 4
CACHE_VERSION = 1
POOLS = {"train": ("train", "val"), "test": ("test",)}
#: (file stem, number of characters, first char_id) of the two halves of the release.
HALVES = (("images_background", 964, 1), ("images_evaluation", 659, 965))
SHIPPED_TABLE = Path(__file__).resolve().parent.parent / "assets" / "omniglot_characters.csv.gz"
_PNG_NAME = re.compile(r"(?:^|/)([^/]+)/(character\d+)/(\d{4})_(\d{2})\.png$")


@dataclass(frozen=True)
class OmniglotData:
    """All 1623 characters: ``images`` uint8 (1623, 20, 28, 28), ink = 255, background = 0."""

    images: np.ndarray
    char_ids: np.ndarray  # int64 (1623,), the global ids 1..1623 of the file names
    alphabets: Tuple[str, ...]
    characters: Tuple[str, ...]
    vinyals_split: Tuple[str, ...]  # train | val | test

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0] * self.images.shape[1])

    def pool_indices(self, pool: str) -> np.ndarray:
        """Indices (axis 0) of the characters of ``pool``: 'train' (1200) or 'test' (423)."""
        if pool not in POOLS:
            raise DataError(f"unknown Omniglot pool '{pool}'; use 'train' (1200 characters) or 'test' (423)")
        wanted = POOLS[pool]
        return np.array([i for i, s in enumerate(self.vinyals_split) if s in wanted], dtype=np.int64)


def read_character_table(path: Path | None = None) -> Dict[int, Tuple[str, str, str]]:
    """``characters.csv`` as {char_id: (alphabet, character, vinyals_split)}.

    ``path`` None reads the copy shipped in ``sharedsg/assets`` (for users whose
    Omniglot folder has only the images). A malformed line is a DataError naming it.
    """
    source = SHIPPED_TABLE if path is None else path
    try:
        raw = gzip.decompress(source.read_bytes()) if source.suffix == ".gz" else source.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise DataError(f"{source}: cannot read the Omniglot character table ({exc}); restore the file") from None
    needed = ("char_id", "alphabet", "character", "vinyals_split")
    reader = csv.DictReader(io.StringIO(text))
    table: Dict[int, Tuple[str, str, str]] = {}
    try:
        for row in reader:
            where = f"{source}: line {reader.line_num}"
            missing = [c for c in needed if not row.get(c)]
            if missing:
                raise DataError(f"{where}: missing column {missing[0]}; the header must name {','.join(needed)}")
            if row["vinyals_split"] not in ("train", "val", "test"):
                raise DataError(f"{where}: vinyals_split '{row['vinyals_split']}' is not train, val or test")
            if not re.fullmatch(r"[0-9]+", row["char_id"]) or not 1 <= int(row["char_id"]) <= NUM_CHARACTERS:
                raise DataError(f"{where}: char_id '{row['char_id']}' is not an integer in 1..{NUM_CHARACTERS}")
            if int(row["char_id"]) in table:
                raise DataError(f"{where}: char_id {row['char_id']} appears twice")
            table[int(row["char_id"])] = (row["alphabet"], row["character"], row["vinyals_split"])
    except csv.Error as exc:
        raise DataError(f"{source}: line {reader.line_num}: cannot read ({exc})") from None
    if len(table) != NUM_CHARACTERS:
        raise DataError(f"{source}: expected char_id 1..{NUM_CHARACTERS}, found {len(table)} ids; restore the file")
    return table


def to_ink28(background: np.ndarray) -> np.ndarray:
    """(n, 105, 105) bool with True = background -> (n, 28, 28) uint8 ink intensity (area average)."""
    out = np.empty((background.shape[0], IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    ink = np.where(background, np.uint8(0), np.uint8(255))
    for i in range(ink.shape[0]):
        image = Image.fromarray(ink[i], mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)
        out[i] = np.asarray(image)
    return out


def read_npz_half(path: Path, count: int) -> np.ndarray:
    """One npz file -> uint8 (count, 20, 28, 28); a truncated or corrupted file raises DataError."""
    expected = (count, DRAWERS, SOURCE_SIZE, SOURCE_SIZE)
    try:
        with np.load(path) as archive:
            images = archive["images"]
    except FileNotFoundError:
        raise missing_dataset("omniglot", path, "file not found") from None
    except Exception as exc:  # zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError
        raise DataError(f"{path}: corrupted or truncated npz ({type(exc).__name__}: {exc}); download it again") from None
    if images.shape != expected or images.dtype != np.bool_:
        raise DataError(f"{path}: 'images' is {images.dtype}{list(images.shape)}, expected bool{list(expected)}; download it again")
    return to_ink28(images.reshape(-1, SOURCE_SIZE, SOURCE_SIZE)).reshape(count, DRAWERS, IMAGE_SIZE, IMAGE_SIZE)


def read_png_zip(path: Path) -> Dict[int, Tuple[str, str, np.ndarray]]:
    """An original-release zip -> {char_id: (alphabet, character, uint8 (20, 28, 28))}.

    Every character found must have all 20 drawings (``<char_id>_01.png`` .. ``_20.png``).
    """
    found: Dict[int, Dict[int, np.ndarray]] = {}
    names: Dict[int, Tuple[str, str]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in sorted(archive.namelist()):
                match = _PNG_NAME.search(member)
                if match is None:
                    continue
                alphabet, character, char_id, drawer = match.group(1), match.group(2), int(match.group(3)), int(match.group(4))
                with Image.open(io.BytesIO(archive.read(member))) as image:
                    if image.size != (SOURCE_SIZE, SOURCE_SIZE):
                        raise DataError(f"{path}: {member}: image is {image.size}, expected 105x105; download the release again")
                    pixels = np.asarray(image.convert("1"), dtype=bool)
                found.setdefault(char_id, {})[drawer] = pixels
                names[char_id] = (alphabet, character)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path}: corrupted or truncated zip ({exc}); download it again") from None
    if not found:
        raise DataError(f"{path}: no '<alphabet>/characterNN/NNNN_DD.png' images inside; is this an Omniglot release zip?")
    result: Dict[int, Tuple[str, str, np.ndarray]] = {}
    for char_id, drawings in sorted(found.items()):
        if sorted(drawings) != list(range(1, DRAWERS + 1)):
            raise DataError(f"{path}: character {names[char_id][0]}/{names[char_id][1]} has {len(drawings)} of 20 drawings; download the release again")
        stack = np.stack([drawings[d] for d in range(1, DRAWERS + 1)])
        result[char_id] = (*names[char_id], to_ink28(stack))
    return result


def detect_layout(directory: Path) -> str:
    """'npz' or 'png' (original zips), from the files present in ``directory``."""
    if all((directory / f"{stem}.npz").is_file() for stem, _, _ in HALVES):
        return "npz"
    if all((directory / f"{stem}.zip").is_file() for stem, _, _ in HALVES):
        return "png"
    raise missing_dataset("omniglot", directory, "no Omniglot images (images_background.npz + images_evaluation.npz "
                          "or images_background.zip + images_evaluation.zip)")


def _source_files(directory: Path, layout: str) -> List[Path]:
    files = [directory / f"{stem}.{layout if layout == 'npz' else 'zip'}" for stem, _, _ in HALVES]
    table = directory / "characters.csv"
    return files + ([table] if table.is_file() else [SHIPPED_TABLE])


def _cache_key(files: List[Path]) -> str:
    digest = hashlib.sha256(f"omniglot-v{CACHE_VERSION}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _read_images(directory: Path, layout: str, table: Dict[int, Tuple[str, str, str]]) -> np.ndarray:
    if layout == "npz":
        return np.concatenate([read_npz_half(directory / f"{stem}.npz", count) for stem, count, _ in HALVES])
    images = np.zeros((NUM_CHARACTERS, DRAWERS, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for stem, count, first in HALVES:
        path = directory / f"{stem}.zip"
        chars = read_png_zip(path)
        for char_id, (alphabet, character, stack) in chars.items():
            if not first <= char_id < first + count:
                raise DataError(f"{path}: character id {char_id} ({alphabet}/{character}) does not belong in {stem}")
            if table[char_id][:2] != (alphabet, character):
                raise DataError(f"{path}: character id {char_id} is {alphabet}/{character} but the character table says {'/'.join(table[char_id][:2])}")
            images[char_id - 1] = stack
        if len(chars) != count:
            raise DataError(f"{path}: {len(chars)} characters, expected {count}; the zip is incomplete, download it again")
    return images


def load_omniglot(directory: Path, cache: Path) -> OmniglotData:
    """All of Omniglot at 28x28, from the cache under ``cache/omniglot`` (built on first use)."""
    layout = detect_layout(directory)
    files = _source_files(directory, layout)
    table = read_character_table(files[-1] if files[-1] != SHIPPED_TABLE else None)
    cached = cache / "omniglot" / f"images28-{_cache_key(files)}.npy"
    images = None
    if cached.is_file():
        try:
            images = np.load(cached)
        except (ValueError, OSError, EOFError):
            images = None  # a damaged cache is rebuilt
        if images is not None and images.shape != (NUM_CHARACTERS, DRAWERS, IMAGE_SIZE, IMAGE_SIZE):
            images = None
    if images is None:
        images = _read_images(directory, layout, table)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        with open(partial, "wb") as handle:
            np.save(handle, images)
        os.replace(partial, cached)
    ids = np.arange(1, NUM_CHARACTERS + 1, dtype=np.int64)
    return OmniglotData(
        images=images,
        char_ids=ids,
        alphabets=tuple(table[i][0] for i in ids),
        characters=tuple(table[i][1] for i in ids),
        vinyals_split=tuple(table[i][2] for i in ids),
    )


class OmniglotPool:
    """The classes of one pool: each (character, rotation by 90*r degrees) is one class.

    Class ``c`` is character ``indices[c // 4]`` rotated ``c % 4`` times by 90 degrees;
    ``drawers`` restricts which of the 20 drawings are used (all by default).
    """

    def __init__(self, data: OmniglotData, pool: str, drawers: np.ndarray | None = None) -> None:
        self.data = data
        self.pool = pool
        self.indices = data.pool_indices(pool)
        self.drawers = np.arange(DRAWERS) if drawers is None else np.asarray(drawers, dtype=np.int64)
        self.num_classes = int(len(self.indices) * ROTATIONS)
        self.samples_per_class = int(len(self.drawers))

    def char_ids(self, classes: np.ndarray) -> np.ndarray:
        """Global character ids (1..1623) of pool classes."""
        return self.data.char_ids[self.indices[np.asarray(classes) // ROTATIONS]]

    @staticmethod
    def rotations(classes: np.ndarray) -> np.ndarray:
        """Number of 90-degree counter-clockwise rotations of pool classes."""
        return np.asarray(classes) % ROTATIONS

    def images(self, classes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """float32 (n, m, 28, 28) in [0, 1]: sample ``samples[i, j]`` of class ``classes[i]``."""
        classes = np.asarray(classes)
        chars = self.indices[classes // ROTATIONS]
        out = self.data.images[chars[:, None], self.drawers[np.asarray(samples)]]
        rotation = classes % ROTATIONS
        for r in (1, 2, 3):
            rows = rotation == r
            if rows.any():
                out[rows] = np.rot90(out[rows], r, axes=(-2, -1))
        return out.astype(np.float32) / np.float32(255.0)
