"""The demo sample shipped in the package: SDD cyclists and pedestrians (paper Sec. 4.2 stand-in).

``sharedsg/assets/sdd_sample.npz`` holds the visible Biker / Pedestrian tracks of
:data:`SAMPLE_VIDEOS` as exact box-edge sums in pixels (``xmin + xmax``,
``ymin + ymax``, int32) plus each video's metres-per-pixel scale, so loading it
gives the same tracks, to the bit, as :func:`sharedsg.data.sdd.load_sdd` on those
videos. :func:`build_sample` rebuilds it byte for byte from an SDD folder (fixed
order, fixed zip timestamps). Licence: CC BY-NC-SA 3.0, see ``sdd_sample.LICENSE.txt``.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Dict, List

import numpy as np

from sharedsg.data.errors import DataError
from sharedsg.data.sdd import read_annotations, read_scales, visible_tracks
from sharedsg.data.tracks import CLASSES, Track, TrackSet, split_at_gaps

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "sdd_sample.npz"
SAMPLE_VIDEOS = ("gates/video4", "little/video0")
SAMPLE_FPS = 29.97
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz_deterministic(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """An ``np.load``-able npz whose bytes depend only on the arrays (sorted names, fixed dates)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, arrays[name], version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def build_sample(sdd_dir: Path, out: Path = SAMPLE_PATH) -> Path:
    """Rebuild the shipped sample from an SDD folder (``<scene>/<videoN>/annotations.txt``)."""
    scales = read_scales(sdd_dir / "estimated_scales.yaml")
    track_video: List[int] = []
    track_id: List[int] = []
    track_class: List[int] = []
    lengths: List[int] = []
    sums: List[np.ndarray] = []
    for video_index, video in enumerate(SAMPLE_VIDEOS):
        scene, name = video.split("/")
        path = sdd_dir / scene / name / "annotations.txt"
        if not path.is_file():
            raise DataError(f"{path}: not found; build-sample needs the SDD videos {', '.join(SAMPLE_VIDEOS)}")
        for data_class, number, frames, edge_sums in visible_tracks(read_annotations(path)):
            track_video.append(video_index)
            track_id.append(number)
            track_class.append(CLASSES.index(data_class))
            lengths.append(len(frames))
            if (np.diff(frames) < 1).any():
                raise DataError(f"{path}: track {number} repeats a frame; the annotations are damaged")
            sums.append(np.concatenate([frames[:, None] - frames[0], edge_sums], axis=1))
    arrays = {
        "videos": np.array(SAMPLE_VIDEOS),
        "scales": np.array([scales[tuple(v.split("/"))] for v in SAMPLE_VIDEOS], dtype=np.float64),
        "fps": np.array(SAMPLE_FPS, dtype=np.float64),
        "track_video": np.array(track_video, dtype=np.int16),
        "track_id": np.array(track_id, dtype=np.int32),
        "track_class": np.array(track_class, dtype=np.int8),
        "track_length": np.array(lengths, dtype=np.int32),
        "points": np.concatenate(sums).astype(np.int32),  # (frame - first frame, xmin + xmax, ymin + ymax)
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_npz_deterministic(out, arrays)
    return out


#: array -> (dtype kind, number of dimensions) of the sample's arrays
SAMPLE_ARRAYS = {"videos": ("U", 1), "scales": ("f", 1), "fps": ("f", 0), "track_video": ("i", 1), "track_id": ("i", 1),
                 "track_class": ("i", 1), "track_length": ("i", 1), "points": ("i", 2)}


def _check_sample(path: Path, data: Dict[str, np.ndarray]) -> None:
    """Every array present with its kind and shape, and the per-track records consistent with each other."""
    rebuild = "rebuild it with 'sharedsg data build-sample --sdd DIR'"
    for name, (kind, ndim) in SAMPLE_ARRAYS.items():
        if name not in data:
            raise DataError(f"{path}: array '{name}' is missing; {rebuild}")
        if data[name].dtype.kind != kind or data[name].ndim != ndim:
            raise DataError(f"{path}: array '{name}' is {data[name].dtype}{list(data[name].shape)}, expected kind '{kind}' with {ndim} dimensions; {rebuild}")
    tracks = len(data["track_id"])
    for name in ("track_video", "track_class", "track_length"):
        if len(data[name]) != tracks:
            raise DataError(f"{path}: array '{name}' has {len(data[name])} records for {tracks} tracks; {rebuild}")
    if len(data["scales"]) != len(data["videos"]) or not (np.isfinite(data["scales"]).all() and (data["scales"] > 0).all()):
        raise DataError(f"{path}: 'scales' must hold one positive scale per video; {rebuild}")
    if not (np.isfinite(data["fps"]) and data["fps"] > 0):
        raise DataError(f"{path}: 'fps' is {data['fps']}, not a positive number; {rebuild}")
    if data["points"].shape[1:] != (3,) or data["track_length"].sum() != len(data["points"]):
        raise DataError(f"{path}: 'points' is {list(data['points'].shape)}, expected (sum of track_length = {int(data['track_length'].sum())}, 3); {rebuild}")
    checks = (("track_video", data["track_video"], len(data["videos"])), ("track_class", data["track_class"], len(CLASSES)))
    for name, values, limit in checks:
        bad = np.nonzero((values < 0) | (values >= limit))[0]
        if len(bad):
            raise DataError(f"{path}: track record {int(bad[0])}: {name} {int(values[bad[0]])} is not in 0..{limit - 1}; {rebuild}")
    bad = np.nonzero(data["track_length"] < 1)[0]
    if len(bad):
        raise DataError(f"{path}: track record {int(bad[0])}: track_length {int(data['track_length'][bad[0]])} is not positive; {rebuild}")


def load_sample(path: Path = SAMPLE_PATH) -> TrackSet:
    """The shipped sample as a :class:`TrackSet` (well under a second)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise DataError(f"{path}: the shipped sample is missing; rebuild it with 'sharedsg data build-sample --sdd DIR'") from None
    except Exception as exc:
        raise DataError(f"{path}: damaged sample ({type(exc).__name__}: {exc}); rebuild it with 'sharedsg data build-sample --sdd DIR'") from None
    _check_sample(path, data)
    videos = [str(v) for v in data["videos"]]
    fps = float(data["fps"])
    bounds = np.concatenate([[0], np.cumsum(data["track_length"])])
    tracks: List[Track] = []
    counts = {c: 0 for c in CLASSES}
    for i in range(len(data["track_id"])):
        points = data["points"][bounds[i] : bounds[i + 1]].astype(np.float64)
        video = int(data["track_video"][i])
        data_class = CLASSES[int(data["track_class"][i])]
        segments = split_at_gaps(points[:, 0], points[:, 1:] / 2 * data["scales"][video])
        tracks.append(Track(f"sdd/{videos[video]}/{int(data['track_id'][i])}", data_class, tuple(segments), fps))
        counts[data_class] += 1
    return TrackSet(source=str(path), tracks=tracks, track_counts=counts)
