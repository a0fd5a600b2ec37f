"""Omniglot loading (Sec. 4.1) on the real files: counts, the Vinyals split, both layouts, the cache."""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from sharedsg.config import data_root
from sharedsg.data.errors import DataError
from sharedsg.data.omniglot import SHIPPED_TABLE, OmniglotPool, load_omniglot, read_character_table, read_png_zip

def omniglot_dir():
    """The Omniglot folder of the data root (read when a test runs: unmarked tests see no data)."""
    return data_root() / "omniglot"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "omniglot-cache"  # shared by every test module of the session


@pytest.fixture(scope="module")
def omniglot(cache):
    return load_omniglot(omniglot_dir(), cache)


@pytest.mark.needs_data("omniglot")
def test_counts_and_split(omniglot):
    assert omniglot.images.shape == (1623, 20, 28, 28)
    assert omniglot.num_images == 32460
    assert omniglot.images.dtype == np.uint8
    train, test = omniglot.pool_indices("train"), omniglot.pool_indices("test")
    assert (len(train), len(test)) == (1200, 423)
    assert not set(train) & set(test)
    assert sorted(set(train) | set(test)) == list(range(1623))
    # ink = 1: about 8% of a drawing is ink (README: ~92% of the 105x105 pixels are background)
    assert 0.05 < omniglot.images.mean() / 255 < 0.11


@pytest.mark.needs_data("omniglot")
def test_warm_load_is_fast_and_identical(omniglot, cache):
    start = time.perf_counter()
    again = load_omniglot(omniglot_dir(), cache)
    assert time.perf_counter() - start < 5.0
    assert np.array_equal(again.images, omniglot.images)


@pytest.mark.needs_data("omniglot")
def test_png_layout_matches_npz(omniglot):
    chars = read_png_zip(omniglot_dir() / "images_background_small1.zip")
    assert len(chars) == 136  # Balinese, Early_Aramaic, Greek, Korean, Latin: 2720 PNGs
    for char_id, (alphabet, character, images) in chars.items():
        assert (omniglot.alphabets[char_id - 1], omniglot.characters[char_id - 1]) == (alphabet, character)
        assert np.array_equal(images, omniglot.images[char_id - 1])


@pytest.mark.needs_data("omniglot")
def test_incomplete_release_zips_are_rejected(tmp_path, cache):
    shutil.copy(omniglot_dir() / "images_background_small1.zip", tmp_path / "images_background.zip")
    shutil.copy(omniglot_dir() / "images_background_small2.zip", tmp_path / "images_evaluation.zip")
    with pytest.raises(DataError, match=r"images_background\.zip: 136 characters, expected 964"):
        load_omniglot(tmp_path, cache)


@pytest.mark.needs_data("omniglot")
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_npz_is_an_error(tmp_path, cache, damage):
    raw = bytearray((omniglot_dir() / "images_background.npz").read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "images_background.npz").write_bytes(bytes(raw))
    shutil.copy(omniglot_dir() / "images_evaluation.npz", tmp_path)
    shutil.copy(omniglot_dir() / "characters.csv", tmp_path)
    with pytest.raises(DataError, match=r"images_background\.npz: corrupted or truncated npz") as info:
        load_omniglot(tmp_path, cache)
    assert "\n" not in str(info.value)


def test_missing_images_name_what_is_needed(tmp_path, cache):
    with pytest.raises(DataError, match="images_background.npz"):
        load_omniglot(tmp_path, cache)
    with pytest.raises(DataError, match="set SHAREDSG_DATA .*`sharedsg data download omniglot`"):
        load_omniglot(tmp_path, cache)


@pytest.mark.needs_data("omniglot")
def test_shipped_character_table_equals_the_real_one():
    assert read_character_table(None) == read_character_table(omniglot_dir() / "characters.csv")


@pytest.mark.needs_data("omniglot")
def test_rotations_are_separate_classes(omniglot):
    pool = OmniglotPool(omniglot, "test")
    assert pool.num_classes == 423 * 4
    images = pool.images(np.array([0, 1, 2, 3]), np.zeros((4, 1), dtype=int))[:, 0]
    for r in range(4):
        assert np.array_equal(images[r], np.rot90(images[0], r))
    assert images.dtype == np.float32 and images.max() <= 1.0 and images.min() >= 0.0
    assert pool.char_ids(np.array([0, 3, 4])).tolist() == [omniglot.pool_indices("test")[0] + 1] * 2 + [omniglot.pool_indices("test")[1] + 1]


def _table_lines() -> list:
    return gzip.decompress(SHIPPED_TABLE.read_bytes()).decode().splitlines()


@pytest.mark.parametrize("line, new, message", [
    (4, "x,background,2,Arcadian,character03,train", r"line 4: char_id 'x' is not an integer in 1\.\.1623"),
    (4, "0,background,2,Arcadian,character03,train", r"line 4: char_id '0' is not an integer in 1\.\.1623"),
    (4, "2,background,1,Arcadian,character02,train", r"line 4: char_id 2 appears twice"),
    (5, "4,background,3,Arcadian,character04,training", r"line 5: vinyals_split 'training' is not train, val or test"),
    (6, "5,background", r"line 6: missing column alphabet"),
    (1, "char_id,set,npz_index,alphabet,character,split", r"line 2: missing column vinyals_split"),
])
def test_malformed_character_table_lines_are_named(tmp_path, line, new, message):
    lines = _table_lines()
    lines[line - 1] = new
    path = tmp_path / "characters.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"characters\.csv: {message}") as info:
        read_character_table(path)
    assert "\n" not in str(info.value)


def test_a_short_character_table_is_one_line(tmp_path):
    path = tmp_path / "characters.csv"
    path.write_text("\n".join(_table_lines()[:101]) + "\n")
    with pytest.raises(DataError, match=r"characters\.csv: expected char_id 1\.\.1623, found 100 ids"):
        read_character_table(path)
    path.write_bytes(b"char_id,alphabet\n\xff\xfe")
    with pytest.raises(DataError, match=r"characters\.csv: cannot read the Omniglot character table"):
        read_character_table(path)
