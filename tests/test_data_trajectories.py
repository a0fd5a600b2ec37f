"""SDD trajectories (Sec. 4.2, 5.2) on the real annotations: tracks, windows, split, scaler, sources."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import torch

from sharedsg.config import data_root, load_config
from sharedsg.data.errors import DataError
from sharedsg.data.scaler import MinMaxScaler
from sharedsg.data.sources import load_tracks, load_windows, make_source
from sharedsg.data.tracks import resample, windows
from sharedsg.data.trajectories import WindowSpec, build_windows


@pytest.fixture(scope="module")
def sdd():
    return load_tracks("sdd", data_root(), 29.97)


@pytest.mark.needs_data("sdd")
def test_track_counts_before_windowing(sdd):
    assert sdd.track_counts == {"cyclist": 358, "pedestrian": 617}
    assert sdd.skipped["tracks with only lost rows"] == 17  # 358 + 617 - 17 tracks have visible rows
    assert len(sdd.tracks) == 358 + 617 - 17


@pytest.mark.needs_data("sdd")
def test_window_counts_are_stable_for_a_fixed_seed(sdd):
    built = build_windows(sdd, WindowSpec())
    counts = {key: len(value) for key, value in built.scaled.items()}
    assert counts == {("cyclist", "train"): 1019, ("cyclist", "test"): 257,
                      ("pedestrian", "train"): 3524, ("pedestrian", "test"): 782}
    again = build_windows(sdd, WindowSpec())
    assert all(np.array_equal(built.scaled[k], again.scaled[k]) for k in counts)
    other = build_windows(sdd, WindowSpec(split_seed=1))
    assert other.track_keys != built.track_keys


@pytest.mark.needs_data("sdd")
def test_no_track_gives_windows_to_both_splits(sdd):
    built = build_windows(sdd, WindowSpec())
    for data_class in ("cyclist", "pedestrian"):
        train, test = set(built.track_keys[(data_class, "train")]), set(built.track_keys[(data_class, "test")])
        assert train and test and not train & test


@pytest.mark.needs_data("sdd")
def test_max_train_tracks_keeps_150_cyclists(sdd):
    built = build_windows(sdd, WindowSpec(max_train_tracks=150))
    assert len(built.track_keys[("cyclist", "train")]) == 150
    assert built.track_keys[("cyclist", "test")] == build_windows(sdd, WindowSpec()).track_keys[("cyclist", "test")]


@pytest.mark.needs_data("sdd")
def test_scaler_fitted_on_training_windows_only(sdd):
    built = build_windows(sdd, WindowSpec())
    train = np.concatenate([built.scaled[("cyclist", "train")], built.scaled[("pedestrian", "train")]])
    assert train.reshape(-1, 2).min(axis=0) == pytest.approx([-0.5, -0.5], abs=1e-6)
    assert train.reshape(-1, 2).max(axis=0) == pytest.approx([0.5, 0.5], abs=1e-6)
    buffer = io.BytesIO()
    torch.save({"scaler": built.scaler.state_dict()}, buffer)
    buffer.seek(0)
    restored = MinMaxScaler.from_state_dict(torch.load(buffer, weights_only=True)["scaler"])
    assert restored == built.scaler
    metres = restored.inverse_transform(built.scaled[("cyclist", "test")])
    assert np.allclose(restored.transform(metres), built.scaled[("cyclist", "test")], atol=1e-6)


def test_resample_keeps_constant_velocity():
    xy = np.stack([np.arange(300) * 0.1, np.zeros(300)], axis=1)  # 0.1 m per frame at 29.97 fps
    out = resample(xy, 29.97, 25.0)
    assert np.allclose(np.diff(out[:, 0]), 0.1 * 29.97 / 25.0)
    assert len(out) == int(299 / 29.97 * 25) + 1
    assert windows(out, 100, 50).shape == (len(range(0, len(out) - 99, 50)), 100, 2)


@pytest.mark.needs_data("sdd")
def test_sources_share_one_scaler_and_are_seeded():
    cfg = load_config(None, ["data.format=sdd"])
    cyclist = make_source(cfg.data, "cyclist", "train", seed=0)
    pedestrian = make_source(cfg.data, "pedestrian", "train", seed=0)
    assert cyclist.scaler is pedestrian.scaler
    assert cyclist.num_windows == 1019
    batch = cyclist.next_batch(16)
    assert batch.x.shape == (16, 50, 2) and batch.y.shape == (16, 50, 2) and batch.x.dtype == torch.float32
    same = make_source(cfg.data, "cyclist", "train", seed=0).next_batch(16)
    assert torch.equal(batch.x, same.x)
    assert not torch.equal(batch.x, make_source(cfg.data, "cyclist", "train", seed=1).next_batch(16).x)
    first = [b.x for b in cyclist.eval_batches(32, 3)]
    assert len(first) == 3 and all(torch.equal(a, b.x) for a, b in zip(first, cyclist.eval_batches(32, 3)))
    assert load_windows("sdd", data_root(), 29.97, replace(WindowSpec())) is load_windows("sdd", data_root(), 29.97, WindowSpec())


def test_bad_choices_are_one_line_errors():
    cfg = load_config(None, ["data.format=sdd"])
    with pytest.raises(DataError, match="'car' is not one of cyclist, pedestrian"):
        make_source(cfg.data, "car", "train", seed=0)
    with pytest.raises(DataError, match="split 'val'"):
        make_source(cfg.data, "cyclist", "val", seed=0)
