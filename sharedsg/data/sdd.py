"""Stanford Drone Dataset annotations as cyclist / pedestrian tracks (stand-in for inD, Sec. 4.2).

``<scene>/<videoN>/annotations.txt`` rows are ``track_id xmin ymin xmax ymax frame
lost occluded generated "label"`` in pixels. ``Biker`` -> cyclist, ``Pedestrian`` ->
pedestrian, other labels are left out; rows with ``lost`` = 1 are dropped (counted
in the report); box centres are converted to metres with ``estimated_scales.yaml``.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import yaml

from sharedsg.data.errors import DataError, missing_dataset
from sharedsg.data.tracks import Track, TrackSet, split_at_gaps

LABELS: Tuple[str, ...] = ("Pedestrian", "Biker", "Skater", "Cart", "Car", "Bus")
CLASS_OF_LABEL: Dict[int, str] = {LABELS.index("Biker"): "cyclist", LABELS.index("Pedestrian"): "pedestrian"}
COLUMN_NAMES = ("track_id", "xmin", "ymin", "xmax", "ymax", "frame", "lost", "occluded", "generated", "label")
COLUMNS = len(COLUMN_NAMES)


def annotation_files(directory: Path) -> List[Path]:
    """``<scene>/<videoN>/annotations.txt`` under ``directory``, in sorted order."""
    files = sorted(directory.glob("*/video*/annotations.txt"))
    if not files:
        raise missing_dataset("sdd", directory, "no <scene>/<videoN>/annotations.txt files")
    return files


def read_scales(path: Path) -> Dict[Tuple[str, str], float]:
    """``estimated_scales.yaml`` (``scene: videoN: scale: metres per pixel``) -> {(scene, video): scale}."""
    try:
        root = yaml.compose(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: not found; SDD needs estimated_scales.yaml (OpenTraj datasets/SDD) beside the scene folders") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    scales: Dict[Tuple[str, str], float] = {}
    for scene, videos in _mapping_items(path, root, "scene: videoN: scale: <metres per pixel>"):
        for video, entry in _mapping_items(path, videos, f"{scene.value}: videoN: scale: <metres per pixel>"):
            where = f"{path}: line {video.start_mark.line + 1}: {scene.value}/{video.value}"
            fields = {key.value: value for key, value in _mapping_items(path, entry, "scale: <metres per pixel>")}
            if "scale" not in fields:
                raise DataError(f"{where} has no 'scale: <metres per pixel>'")
            try:
                scale = float(fields["scale"].value)
            except (TypeError, ValueError):
                scale = float("nan")
            if not (math.isfinite(scale) and scale > 0):
                raise DataError(f"{where}: scale {fields['scale'].value!r} is not a positive number of metres per pixel")
            scales[(str(scene.value), str(video.value))] = scale
    return scales


def _mapping_items(path: Path, node: Optional[yaml.Node], expected: str) -> List[Tuple[yaml.Node, yaml.Node]]:
    """The (key, value) nodes of a YAML mapping node; anything else is a DataError naming its line."""
    if node is None:
        return []
    if not isinstance(node, yaml.MappingNode):
        raise DataError(f"{path}: line {node.start_mark.line + 1}: expected a mapping '{expected}'")
    return list(node.value)


def _numbers(line: str) -> Optional[np.ndarray]:
    """The first 9 columns of an annotation line parsed as the fast path parses them, or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "could not be read to its end": checked by size
        try:
            values = np.fromstring(" ".join(line.split()[:9]), sep=" ")
        except ValueError:
            return None
    return values if values.size == 9 else None


def _line_problem(fields: List[str]) -> Optional[str]:
    if len(fields) != COLUMNS:
        return f"{len(fields)} columns, expected {COLUMNS} ({' '.join(COLUMN_NAMES)})"
    if fields[9].strip('"') not in LABELS or not (fields[9].startswith('"') and fields[9].endswith('"')):
        return f"unknown label {fields[9]}; expected one of {', '.join(LABELS)} in double quotes"
    if _numbers(" ".join(fields)) is None:
        return "a non-numeric value in the first 9 columns"
    return None


def _value_problem(row: np.ndarray) -> Optional[str]:
    """What is wrong with one parsed row: non-finite numbers, ids and frames, the 0/1 flags."""
    for column, value in zip(COLUMN_NAMES, row):
        if not np.isfinite(value):
            return f"{column} is {value}, not a finite number"
    for column in ("track_id", "frame"):
        value = row[COLUMN_NAMES.index(column)]
        if value < 0 or value != int(value):
            return f"{column} {value:g} is not a non-negative integer"
    for column in ("lost", "occluded", "generated"):
        value = row[COLUMN_NAMES.index(column)]
        if value not in (0, 1):
            return f"{column} is {value:g}, expected 0 or 1"
    return None


def read_annotations(path: Path) -> np.ndarray:
    """float64 (rows, 10); the label column holds the index into :data:`LABELS`.

    A malformed line raises DataError naming the file and the line (``row N``, counted
    from 1 over the file's lines; blank lines are skipped but counted).
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty; restore it from the SDD release")
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    coded = text
    for index, label in enumerate(LABELS):
        coded = coded.replace(f'"{label}"', str(index))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # a short read is caught by the size check below
        try:
            values = np.array([]) if '"' in coded else np.fromstring(coded, sep=" ")
        except ValueError:
            values = np.array([])
    if values.size != COLUMNS * len(numbered):
        for number, line in numbered:
            problem = _line_problem(line.split())
            if problem:
                raise DataError(f"{path}: row {number}: {problem}")
        raise DataError(f"{path}: cannot parse the annotations; check the file against the SDD format")
    rows = values.reshape(-1, COLUMNS)
    ids, frames, flags = rows[:, 0], rows[:, 5], rows[:, 6:9]
    bad = (~np.isfinite(rows).all(axis=1) | (ids < 0) | (ids != np.floor(ids)) | (frames < 0) | (frames != np.floor(frames))
           | ((flags != 0) & (flags != 1)).any(axis=1))
    if bad.any():
        first = int(np.nonzero(bad)[0][0])
        raise DataError(f"{path}: row {numbered[first][0]}: {_value_problem(rows[first])}")
    return rows


def visible_tracks(rows: np.ndarray) -> Iterator[Tuple[str, int, np.ndarray, np.ndarray]]:
    """(data_class, track_id, frames, box-edge sums (n, 2)) of each Biker / Pedestrian track with visible rows.

    The sums ``(xmin + xmax, ymin + ymax)`` are twice the box centre in pixels (exact integers).
    """
    for code, data_class in sorted(CLASS_OF_LABEL.items()):
        visible = rows[(rows[:, 9] == code) & (rows[:, 6] == 0)]
        visible = visible[np.lexsort((visible[:, 5], visible[:, 0]))]
        ids, starts = np.unique(visible[:, 0], return_index=True)
        for track_id, part in zip(ids, np.split(visible, starts[1:])):
            sums = np.stack([part[:, 1] + part[:, 3], part[:, 2] + part[:, 4]], axis=1)
            yield data_class, int(track_id), part[:, 5], sums


def read_annotations_cached(path: Path, cache: Optional[Path]) -> np.ndarray:
    """:func:`read_annotations`, through an on-disk ``.npy`` cache keyed by the file's path, size and mtime."""
    if cache is None:
        return read_annotations(path)
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
    cached = cache / "sdd" / f"annotations-{key}.npy"
    if cached.is_file():
        try:
            return np.load(cached, allow_pickle=False)
        except (OSError, ValueError):
            pass  # unreadable cache: parse again and rewrite it
    rows = read_annotations(path)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, rows, allow_pickle=False)
    os.replace(tmp, cached)
    return rows


def load_sdd(directory: Path, fps: float, cache: Optional[Path] = None) -> TrackSet:
    """All Biker / Pedestrian tracks under ``directory`` (an SDD ``annotations`` tree);
    parsed annotation files are cached under ``cache`` when given."""
    files = annotation_files(directory)
    scales = read_scales(directory / "estimated_scales.yaml")
    tracks: List[Track] = []
    counts = {"cyclist": 0, "pedestrian": 0}
    skipped = {"lost rows": 0, "tracks with only lost rows": 0}
    for path in files:
        scene, video = path.parent.parent.name, path.parent.name
        if (scene, video) not in scales:
            raise DataError(f"{directory / 'estimated_scales.yaml'}: no scale for {scene}/{video}; add '{scene}: {video}: scale: <metres per pixel>'")
        rows = read_annotations_cached(path, cache)
        for code, data_class in CLASS_OF_LABEL.items():
            mine = rows[rows[:, 9] == code]
            all_ids, visible_ids = np.unique(mine[:, 0]), np.unique(mine[mine[:, 6] == 0, 0])
            counts[data_class] += len(all_ids)
            skipped["lost rows"] += int((mine[:, 6] != 0).sum())
            skipped["tracks with only lost rows"] += len(all_ids) - len(visible_ids)
        for data_class, track_id, frames, sums in visible_tracks(rows):
            segments = split_at_gaps(frames, sums / 2 * scales[(scene, video)])
            tracks.append(Track(f"sdd/{scene}/{video}/{track_id}", data_class, tuple(segments), fps))
    return TrackSet(source=str(directory), tracks=tracks, track_counts=counts, skipped=skipped)
