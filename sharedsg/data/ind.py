"""inD recordings as cyclist / pedestrian tracks (paper Sec. 4.2; inD is not shipped).

A recording ``XX`` is three comma-separated files with a header row (column names
as in shared/data/README.md, section 4): ``XX_tracks.csv`` (one row per track and
frame, positions ``xCenter``/``yCenter`` in metres), ``XX_tracksMeta.csv`` (one row
per track with its ``class``) and ``XX_recordingMeta.csv`` (``frameRate``).
``bicycle`` -> cyclist, ``pedestrian`` -> pedestrian; ``car`` and ``truck_bus`` are
left out. A track listed in the meta file with no rows is skipped and counted;
every other problem raises :class:`DataError` naming the file and the line.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from sharedsg.data.errors import DataError
from sharedsg.data.tracks import Track, TrackSet, split_at_gaps

TRACK_COLUMNS = ("trackId", "frame", "xCenter", "yCenter")
META_COLUMNS = ("trackId", "class")
RECORDING_COLUMNS = ("frameRate",)
IND_CLASSES = ("car", "truck_bus", "pedestrian", "bicycle")
CLASS_OF = {"bicycle": "cyclist", "pedestrian": "pedestrian"}
SUFFIXES = ("_tracks.csv", "_tracksMeta.csv", "_recordingMeta.csv")
_RECORDING = re.compile(r"^(\d+)(_tracks\.csv|_tracksMeta\.csv|_recordingMeta\.csv)$")


def find_ind_dir(root: Path) -> Path:
    """The folder holding ``XX_tracks.csv`` files: ``root/ind``, ``root/inD``, their ``data/``, or ``root``."""
    for candidate in (root / "ind", root / "ind" / "data", root / "inD", root / "inD" / "data", root):
        if candidate.is_dir() and any(candidate.glob("*_tracks.csv")):
            return candidate
    raise DataError(f"{root}: no inD recordings (XX_tracks.csv) in ind/, inD/ or their data/ folder; inD is not shipped, request it at https://www.ind-dataset.com")


def recording_ids(directory: Path) -> List[str]:
    """Sorted recording ids ``XX`` of every inD file in ``directory``."""
    return sorted({m.group(1) for p in directory.iterdir() if (m := _RECORDING.match(p.name))})


def _header(path: Path, needed: Sequence[str]) -> Dict[str, int]:
    try:
        with open(path, newline="") as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise DataError(f"{path}: not found; every inD recording needs {', '.join('XX' + s for s in SUFFIXES)}") from None
    if not header:
        raise DataError(f"{path}: the file is empty; it needs a header row with {', '.join(needed)} and data rows")
    names = [h.strip() for h in header]
    for column in needed:
        if column not in names:
            raise DataError(f"{path}: missing column '{column}' in the header; inD files need {', '.join(needed)}")
    return {column: names.index(column) for column in needed}


def read_rows(path: Path, needed: Sequence[str]) -> List[Dict[str, str]]:
    """A small csv (meta files) as dicts of the ``needed`` columns; each row gets its line number as '_line'."""
    index = _header(path, needed)
    rows: List[Dict[str, str]] = []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for line, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) <= max(index.values()):
                raise DataError(f"{path}: line {line}: {len(fields)} fields, fewer than the header's columns")
            rows.append({c: fields[i].strip() for c, i in index.items()} | {"_line": str(line)})
    if not rows:
        raise DataError(f"{path}: the file has a header but no data rows")
    return rows


def _locate_bad_value(path: Path, index: Dict[str, int]) -> str:
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for line, fields in enumerate(reader, start=2):
            for column, i in index.items():
                value = fields[i].strip() if i < len(fields) else ""
                try:
                    float(value)
                except ValueError:
                    return f"{path}: line {line}: column {column} is {value!r}, not a number"
    return f"{path}: cannot parse the numeric columns {', '.join(index)}"


def read_tracks(path: Path) -> np.ndarray:
    """float64 (rows, 4): trackId, frame, xCenter, yCenter; NaNs and unordered frames raise DataError."""
    index = _header(path, TRACK_COLUMNS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below
            values = np.loadtxt(path, delimiter=",", skiprows=1, usecols=list(index.values()), ndmin=2, dtype=np.float64)
    except (ValueError, IndexError):
        raise DataError(_locate_bad_value(path, index)) from None
    if len(values) == 0:
        raise DataError(f"{path}: the file has a header but no data rows")
    nan_rows = np.nonzero(np.isnan(values).any(axis=1))[0]
    if len(nan_rows):
        row = int(nan_rows[0])
        column = TRACK_COLUMNS[int(np.nonzero(np.isnan(values[row]))[0][0])]
        raise DataError(f"{path}: line {row + 2}: {column} is NaN; remove or fix the rows without coordinates")
    order = np.argsort(values[:, 0], kind="stable")
    ids, frames = values[order, 0], values[order, 1]
    bad = np.nonzero((ids[1:] == ids[:-1]) & (frames[1:] <= frames[:-1]))[0]
    if len(bad):
        row = int(order[bad[0] + 1])
        raise DataError(
            f"{path}: line {row + 2}: frame {int(frames[bad[0] + 1])} of track {int(ids[bad[0] + 1])} does not come "
            f"after frame {int(frames[bad[0]])}; sort the rows by trackId, frame"
        )
    return values[order]


def load_recording(directory: Path, recording: str) -> TrackSet:
    """One recording's bicycle and pedestrian tracks."""
    tracks_path, meta_path, recording_path = (directory / f"{recording}{s}" for s in SUFFIXES)
    fps_row = read_rows(recording_path, RECORDING_COLUMNS)[0]
    try:
        fps = float(fps_row["frameRate"])
    except ValueError:
        fps = float("nan")
    if not fps > 0:
        raise DataError(f"{recording_path}: line {fps_row['_line']}: frameRate {fps_row['frameRate']!r} is not a positive number")
    classes: Dict[int, str] = {}
    for row in read_rows(meta_path, META_COLUMNS):
        if row["class"] not in IND_CLASSES:
            raise DataError(f"{meta_path}: line {row['_line']}: unknown class '{row['class']}'; inD classes are {', '.join(IND_CLASSES)}")
        try:
            classes[int(float(row["trackId"]))] = row["class"]
        except ValueError:
            raise DataError(f"{meta_path}: line {row['_line']}: trackId {row['trackId']!r} is not an integer") from None
    values = read_tracks(tracks_path)
    ids, starts = np.unique(values[:, 0], return_index=True)
    unknown = [int(i) for i in ids if int(i) not in classes]
    if unknown:
        raise DataError(f"{tracks_path}: track {unknown[0]} has rows but no line in {meta_path.name}; add it there or remove its rows")
    present = {int(i) for i in ids}
    tracks: List[Track] = []
    counts = {"cyclist": 0, "pedestrian": 0}
    for track_id, part in zip(ids, np.split(values, starts[1:])):
        data_class = CLASS_OF.get(classes[int(track_id)])
        if data_class is not None:
            tracks.append(Track(f"ind/{recording}/{int(track_id)}", data_class, tuple(split_at_gaps(part[:, 1], part[:, 2:4])), fps))
    for track_id, ind_class in classes.items():
        if ind_class in CLASS_OF:
            counts[CLASS_OF[ind_class]] += 1
    empty = sum(1 for t, c in classes.items() if c in CLASS_OF and t not in present)
    return TrackSet(source=str(tracks_path), tracks=tracks, track_counts=counts, skipped={"empty tracks (listed in tracksMeta, no rows)": empty})


def load_ind(directory: Path) -> TrackSet:
    """Every recording in ``directory`` (see :func:`find_ind_dir`)."""
    recordings = recording_ids(directory)
    if not recordings:
        raise DataError(f"{directory}: no inD files named XX_tracks.csv / XX_tracksMeta.csv / XX_recordingMeta.csv")
    merged = TrackSet(source=str(directory), tracks=[], track_counts={"cyclist": 0, "pedestrian": 0}, skipped={})
    for recording in recordings:
        part = load_recording(directory, recording)
        merged.tracks.extend(part.tracks)
        for key, value in part.track_counts.items():
            merged.track_counts[key] += value
        for key, value in part.skipped.items():
            merged.skipped[key] = merged.skipped.get(key, 0) + value
    return merged
