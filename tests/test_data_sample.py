"""The shipped SDD sample: small, loads fast, equals SDD, rebuilds byte for byte."""

from __future__ import annotations

import time

import numpy as np
import torch

import pytest

from sharedsg.config import data_root, load_config
from sharedsg.data.sample import SAMPLE_PATH, SAMPLE_VIDEOS, build_sample, load_sample
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
