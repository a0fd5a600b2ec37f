"""inD recordings as cyclist / pedestrian tracks (paper Sec. 4.2; inD is not shipped).

A recording ``XX`` is three comma-separated files with a header row (column names
as in ika's drone-dataset-tools; docs/data.md): ``XX_tracks.csv`` (one row per track and
frame, positions ``xCenter``/``yCenter`` in metres), ``XX_tracksMeta.csv`` (one row
per track with its ``class``) and ``XX_recordingMeta.csv`` (``frameRate``).
``bicycle`` -> cyclist, ``pedestrian`` -> pedestrian; ``car`` and ``truck_bus`` are
left out. A track listed in the meta file with no rows is skipped and counted;
every other problem raises :class:`DataError` naming the file and the line.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from sharedsg.data.errors import DataError, missing_dataset
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
    raise missing_dataset("ind", root, "no inD recordings (XX_tracks.csv) in ind/, inD/ or their data/ folder")


def recording_ids(directory: Path) -> List[str]:
    """Sorted recording ids ``XX`` of every inD file in ``directory``."""
    return sorted({m.group(1) for p in directory.iterdir() if (m := _RECORDING.match(p.name))})


def _not_utf8(path: Path) -> DataError:
    """The error for a file that does not decode as UTF-8, naming the first line that does not."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return DataError(f"{path}: line {number}: not UTF-8 text ({exc.reason} at byte {exc.start} of the line)")
    return DataError(f"{path}: not UTF-8 text")


def _csv_rows(path: Path) -> Iterator[Tuple[int, List[str]]]:
    """(line number, fields) of every non-empty row after the header; a file the csv module
    cannot read is a DataError naming the line."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for fields in reader:
                if fields:
                    yield reader.line_num, fields
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: cannot read ({exc})") from None


def _header(path: Path, needed: Sequence[str]) -> Tuple[Dict[str, int], List[str]]:
    """{needed column: its index} and all column names of the header row."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise DataError(f"{path}: not found; every inD recording needs {', '.join('XX' + s for s in SUFFIXES)}") from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: cannot read the header ({exc})") from None
    if not header:
        raise DataError(f"{path}: the file is empty; it needs a header row with {', '.join(needed)} and data rows")
    names = [h.strip() for h in header]
    for column in needed:
        if column not in names:
            raise DataError(f"{path}: missing column '{column}' in the header; inD files need {', '.join(needed)}")
    return {column: names.index(column) for column in needed}, names


def read_rows(path: Path, needed: Sequence[str]) -> List[Dict[str, str]]:
    """A small csv (meta files) as dicts of the ``needed`` columns; each row gets its line number as '_line'."""
    index, _ = _header(path, needed)
    rows: List[Dict[str, str]] = []
    for line, fields in _csv_rows(path):
        if len(fields) <= max(index.values()):
            raise DataError(f"{path}: line {line}: {len(fields)} fields, fewer than the header's columns")
        rows.append({c: fields[i].strip() for c, i in index.items()} | {"_line": str(line)})
    if not rows:
        raise DataError(f"{path}: the file has a header but no data rows")
    return rows


def _row_problem(fields: List[str], index: Dict[str, int], names: List[str]) -> Optional[str]:
    """What is wrong with one row of a tracks file (every column of the header numeric), or None."""
    if len(fields) != len(names):
        return f"{len(fields)} fields, but the header has {len(names)} columns"
    for column, text in zip(names, fields):
        try:
            float(text.strip())
        except ValueError:
            return f"column {column} is {text.strip()!r}, not a number"
    for column, i in index.items():
        text = fields[i].strip()
        value = float(text)
        if math.isnan(value):
            return f"{column} is NaN; remove or fix the rows without coordinates"
        if not math.isfinite(value):
            return f"{column} is {text!r}, not a finite number"
        if column in ("trackId", "frame") and (value < 0 or value != int(value)):
            return f"{column} {text!r} is not a non-negative integer"
    return None


def _first_bad_row(path: Path, index: Dict[str, int], names: List[str]) -> str:
    for line, fields in _csv_rows(path):
        problem = _row_problem(fields, index, names)
        if problem:
            return f"{path}: line {line}: {problem}"
    return f"{path}: cannot parse the rows as numbers; check the file against the inD format"


def _line_of_row(path: Path, row: int) -> int:
    """The line number of data row ``row`` (0-based, empty rows not counted)."""
    for k, (line, _) in enumerate(_csv_rows(path)):
        if k == row:
            return line
    raise AssertionError(f"{path} has no data row {row}")


def read_tracks(path: Path) -> np.ndarray:
    """float64 (rows, 4): trackId, frame, xCenter, yCenter; a malformed row, a non-finite value or
    unordered frames raise DataError naming the line."""
    index, names = _header(path, TRACK_COLUMNS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below
            # every column, so that a row with a missing or extra field is an error too
            table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64, comments=None,
                               quotechar='"', encoding="utf-8")
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except (ValueError, IndexError):
        raise DataError(_first_bad_row(path, index, names)) from None
    if len(table) == 0:
        raise DataError(f"{path}: the file has a header but no data rows")
    if table.shape[1] != len(names):
        raise DataError(_first_bad_row(path, index, names))
    values = table[:, [index[c] for c in TRACK_COLUMNS]]
    ids, frames = values[:, 0], values[:, 1]
    bad = ~np.isfinite(values).all(axis=1) | (ids < 0) | (ids != np.floor(ids)) | (frames < 0) | (frames != np.floor(frames))
    if bad.any():
        raise DataError(_first_bad_row(path, index, names))
    order = np.argsort(ids, kind="stable")
    ids, frames = ids[order], frames[order]
    unordered = np.nonzero((ids[1:] == ids[:-1]) & (frames[1:] <= frames[:-1]))[0]
    if len(unordered):
        k = int(unordered[0])
        raise DataError(
            f"{path}: line {_line_of_row(path, int(order[k + 1]))}: frame {int(frames[k + 1])} of track {int(ids[k + 1])} "
            f"does not come after frame {int(frames[k])}; sort the rows by trackId, frame"
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
    if not (math.isfinite(fps) and fps > 0):
        raise DataError(f"{recording_path}: line {fps_row['_line']}: frameRate {fps_row['frameRate']!r} is not a positive number")
    classes: Dict[int, str] = {}
    for row in read_rows(meta_path, META_COLUMNS):
        if row["class"] not in IND_CLASSES:
            raise DataError(f"{meta_path}: line {row['_line']}: unknown class '{row['class']}'; inD classes are {', '.join(IND_CLASSES)}")
        if not re.fullmatch(r"[0-9]+(\.0*)?", row["trackId"]):
            raise DataError(f"{meta_path}: line {row['_line']}: trackId {row['trackId']!r} is not a non-negative integer")
        track_id = int(float(row["trackId"]))
        if track_id in classes:
            raise DataError(f"{meta_path}: line {row['_line']}: track {track_id} is listed twice")
        classes[track_id] = row["class"]
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
