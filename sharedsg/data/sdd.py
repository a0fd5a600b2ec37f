"""Stanford Drone Dataset annotations as cyclist / pedestrian tracks (stand-in for inD, Sec. 4.2).

``<scene>/<videoN>/annotations.txt`` rows are ``track_id xmin ymin xmax ymax frame
lost occluded generated "label"`` in pixels. ``Biker`` -> cyclist, ``Pedestrian`` ->
pedestrian, other labels are left out; rows with ``lost`` = 1 are dropped (counted
in the report); box centres are converted to metres with ``estimated_scales.yaml``.
"""

from __future__ import annotations

from pathlib import Path
import hashlib
import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import yaml

from sharedsg.data.errors import DataError
from sharedsg.data.tracks import Track, TrackSet, split_at_gaps

LABELS: Tuple[str, ...] = ("Pedestrian", "Biker", "Skater", "Cart", "Car", "Bus")
CLASS_OF_LABEL: Dict[int, str] = {LABELS.index("Biker"): "cyclist", LABELS.index("Pedestrian"): "pedestrian"}
COLUMNS = 10


def annotation_files(directory: Path) -> List[Path]:
    """``<scene>/<videoN>/annotations.txt`` under ``directory``, in sorted order."""
    files = sorted(directory.glob("*/video*/annotations.txt"))
    if not files:
        raise DataError(f"{directory}: no <scene>/<videoN>/annotations.txt files; point data.root at a folder holding sdd/")
    return files


def read_scales(path: Path) -> Dict[Tuple[str, str], float]:
    """``estimated_scales.yaml`` -> {(scene, video): metres per pixel}."""
    try:
        tree = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: not found; SDD needs estimated_scales.yaml (OpenTraj datasets/SDD) beside the scene folders") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    scales: Dict[Tuple[str, str], float] = {}
    for scene, videos in (tree or {}).items():
        for video, entry in (videos or {}).items():
            scales[(str(scene), str(video))] = float(entry["scale"])
    return scales


def _locate_bad_row(path: Path, text: str) -> str:
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != COLUMNS:
            return f"{path}: row {number}: {len(fields)} columns, expected {COLUMNS} (track_id xmin ymin xmax ymax frame lost occluded generated label)"
        if fields[9].strip('"') not in LABELS:
            return f"{path}: row {number}: unknown label {fields[9]}; expected one of {', '.join(LABELS)}"
        try:
            [float(v) for v in fields[:9]]
        except ValueError:
            return f"{path}: row {number}: a non-numeric value in the first 9 columns"
    return f"{path}: cannot parse the annotations; check the file against the SDD format"


def read_annotations(path: Path) -> np.ndarray:
    """float64 (rows, 10); the label column holds the index into :data:`LABELS`."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty; restore it from the SDD release")
    coded = text
    for index, label in enumerate(LABELS):
        coded = coded.replace(f'"{label}"', str(index))
    values = np.array([]) if '"' in coded else np.fromstring(coded, sep=" ")
    if values.size == 0 or values.size % COLUMNS or values.size // COLUMNS != len(text.splitlines()):
        raise DataError(_locate_bad_row(path, text))
    rows = values.reshape(-1, COLUMNS)
    if np.isnan(rows).any():
        raise DataError(f"{path}: row {int(np.nonzero(np.isnan(rows).any(axis=1))[0][0]) + 1}: NaN value")
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
    scales = read_scales(directory / "estimated_scales.yaml")
    tracks: List[Track] = []
    counts = {"cyclist": 0, "pedestrian": 0}
    skipped = {"lost rows": 0, "tracks with only lost rows": 0}
    for path in annotation_files(directory):
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
