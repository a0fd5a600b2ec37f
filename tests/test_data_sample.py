"""The shipped SDD sample: small, loads fast, equals SDD, rebuilds byte for byte."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from sharedsg.config import data_root, load_config
from sharedsg.data.errors import DataError
from sharedsg.data.sample import SAMPLE_PATH, SAMPLE_VIDEOS, build_sample, load_sample, write_npz_deterministic
from sharedsg.data.sources import load_tracks, make_source
from sharedsg.data.trajectories import WindowSpec, build_windows


def test_small_licensed_and_fast():
    assert SAMPLE_PATH.stat().st_size < 1_000_000
    licence = (SAMPLE_PATH.parent / "sdd_sample.LICENSE.txt").read_text()
    assert "Attribution-NonCommercial-ShareAlike 3.0" in licence and "Robicquet" in licence
    start = time.perf_counter()
    tracks = load_sample()
    build_windows(tracks, WindowSpec())
    assert time.perf_counter() - start < 1.0


def test_a_few_hundred_windows_of_each_class():
    built = build_windows(load_sample(), WindowSpec())
    for data_class in ("cyclist", "pedestrian"):
        total = sum(built.num_windows(data_class, split) for split in ("train", "test"))
        assert total >= 300
    assert (built.num_windows("cyclist", "train"), built.num_windows("pedestrian", "train")) == (280, 413)


@pytest.mark.needs_data("sdd")
def test_same_tracks_as_sdd():
    sdd = {t.key: t for t in load_tracks("sdd", data_root(), 29.97).tracks}
    sample = load_sample().tracks
    assert {t.key.rsplit("/", 1)[0] for t in sample} == {f"sdd/{v}" for v in SAMPLE_VIDEOS}
    for track in sample:
        reference = sdd[track.key]
        assert track.data_class == reference.data_class
        assert all(np.array_equal(a, b) for a, b in zip(track.segments, reference.segments, strict=True))


@pytest.mark.needs_data("sdd")
def test_rebuild_is_byte_for_byte(tmp_path):
    out = build_sample(data_root() / "sdd", tmp_path / "sample.npz")
    assert out.read_bytes() == SAMPLE_PATH.read_bytes()


def test_format_sample_gives_batches():
    cfg = load_config(None, ["data.format=sample"])
    source = make_source(cfg.data, "pedestrian", "test", seed=0)
    batch = source.next_batch(10)
    assert batch.x.shape == (10, 50, 2) and batch.y.dtype == torch.float32
    assert float(batch.x.abs().max()) < 1.0


def _shipped() -> dict:
    with np.load(SAMPLE_PATH) as archive:
        return {name: archive[name] for name in archive.files}


def _replace(arrays: dict, name: str, index: int, value) -> dict:
    changed = arrays[name].copy()
    changed[index] = value
    return {**arrays, name: changed}


@pytest.mark.parametrize("damage, message", [
    (lambda a: {k: v for k, v in a.items() if k != "points"}, r"array 'points' is missing"),
    (lambda a: {**a, "points": a["points"].astype(np.float32)}, r"array 'points' is float32\[65317, 3\], expected kind 'i'"),
    (lambda a: {**a, "track_length": a["track_length"][:-1]}, r"array 'track_length' has 156 records for 157 tracks"),
    (lambda a: {**a, "points": a["points"][:-5]}, r"'points' is \[65312, 3\], expected \(sum of track_length = 65317, 3\)"),
    (lambda a: _replace(a, "track_class", 3, 7), r"track record 3: track_class 7 is not in 0\.\.1"),
    (lambda a: _replace(a, "track_video", 5, 2), r"track record 5: track_video 2 is not in 0\.\.1"),
    (lambda a: _replace(a, "track_length", 9, 0), r"'points' is \[65317, 3\]"),
    (lambda a: {**a, "fps": np.array(np.nan)}, r"'fps' is nan, not a positive number"),
    (lambda a: _replace(a, "scales", 1, -0.5), r"'scales' must hold one positive scale per video"),
])
def test_a_damaged_sample_record_is_one_line(tmp_path, damage, message):
    path = tmp_path / "sample.npz"
    write_npz_deterministic(path, damage(_shipped()))
    with pytest.raises(DataError, match=rf"sample\.npz: {message}.*build-sample") as info:
        load_sample(path)
    assert "\n" not in str(info.value)


def test_a_sample_that_is_not_an_npz_is_one_line(tmp_path):
    path = tmp_path / "sample.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"sample\.npz: damaged sample") as info:
        load_sample(path)
    assert "\n" not in str(info.value)
