"""MNIST (Sec. 5.1) on the real IDX files: counts, raw-MD5 checks, the rare-class schedule."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest
import torch

from sharedsg.config import data_root, load_config
from sharedsg.data.errors import DataError
from sharedsg.data.mnist import RareClassSchedule, load_mnist, read_idx
from sharedsg.data.sources import make_source

def mnist_dir():
    """The MNIST folder of the data root (read when a test runs: unmarked tests see no data)."""
    return data_root() / "mnist"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.needs_data("mnist")
def test_counts_match_the_readme():
    train, test = load_mnist(mnist_dir(), "train"), load_mnist(mnist_dir(), "test")
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert np.bincount(train.labels).tolist() == TRAIN_COUNTS
    assert np.bincount(test.labels).tolist() == TEST_COUNTS
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.mark.needs_data("mnist")
def test_raw_idx_files_read_the_same(tmp_path):
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((mnist_dir() / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    assert np.array_equal(read_idx(raw), load_mnist(mnist_dir(), "test").labels)


@pytest.mark.needs_data("mnist")
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_gz_is_an_error(tmp_path, damage):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = bytearray((mnist_dir() / path.name).read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 1000]
    else:
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: ") as info:
        read_idx(path)
    assert "\n" not in str(info.value)


@pytest.mark.needs_data("mnist")
def test_damaged_raw_file_fails_its_md5(tmp_path):
    raw = bytearray(gzip.decompress((mnist_dir() / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="MD5 of the decompressed data is not the canonical 27ae3e4e"):
        read_idx(path)


@pytest.mark.needs_data("mnist")
def test_missing_file_names_the_download(tmp_path):
    shutil.copy(mnist_dir() / "t10k-images-idx3-ubyte.gz", tmp_path)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz nor t10k-labels-idx1-ubyte found"):
        load_mnist(tmp_path, "test")


def test_rare_class_schedule():
    schedule = RareClassSchedule()
    assert [i for i in range(2001) if schedule.is_rare(i)] == [500, 1000, 1500, 2000]
    assert schedule.classes(499) == (0, 1, 2, 3, 4) and schedule.classes(500) == (5, 6, 7, 8, 9)
    assert schedule.batch_size(500, 32) == 10 and schedule.batch_size(501, 32) == 32
    assert RareClassSchedule(period=100, rare_batch=4).rare_iterations(301) == [100, 200, 300]
    with pytest.raises(DataError):
        RareClassSchedule(period=0)


@pytest.mark.needs_data("mnist")
def test_sources_give_the_ablation_sets():
    cfg = load_config(None, ["data.format=mnist"])
    common = make_source(cfg.data, "common", "train", seed=0)
    batch = common.next_batch(64)
    assert batch.x.shape == (64, 1, 1, 28, 28) and batch.x.dtype == torch.float32
    assert batch.y.shape == (64, 1) and batch.y.dtype == torch.int64
    assert 0.0 <= float(batch.x.min()) and float(batch.x.max()) <= 1.0
    assert set(batch.y.flatten().tolist()) <= {0, 1, 2, 3, 4}
    unseen = make_source(cfg.data, "rare", "test", seed=0)
    assert unseen.num_images == sum(TEST_COUNTS[5:])
    labels = torch.cat([b.y for b in unseen.eval_batches(100, 100)]).flatten()
    assert len(labels) == sum(TEST_COUNTS[5:]) and set(labels.tolist()) == {5, 6, 7, 8, 9}
    again = torch.cat([b.y for b in unseen.eval_batches(100, 100)]).flatten()
    assert torch.equal(labels, again)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x08", r"3 bytes is too short for an IDX header"),
    (struct.pack(">III", 2051, 2, 28), r"12 bytes is too short for an IDX image header \(16 bytes\)"),
    (struct.pack(">IIII", 2051, 2, 20, 20) + bytes(800), r"IDX header says 20x20 images, MNIST images are 28x28"),
    (struct.pack(">II", 2050, 3) + bytes(3), r"IDX magic number 2050 is neither 2051 \(images\) nor 2049 \(labels\)"),
    (struct.pack(">II", 2049, 5) + bytes(3), r"header promises 5 bytes of data but the file holds 3"),
    (struct.pack(">IIII", 2051, 1, 28, 28) + bytes(700), r"header promises 784 bytes of data but the file holds 700"),
])
def test_malformed_idx_headers_are_one_line(tmp_path, content, message):
    path = tmp_path / "digits-idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"digits-idx: {message}") as info:
        read_idx(path)
    assert "\n" not in str(info.value)


def test_well_formed_idx_files_read(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.write_bytes(struct.pack(">IIII", 2051, 2, 28, 28) + bytes(range(256)) * 6 + bytes(32))
    labels.write_bytes(struct.pack(">II", 2049, 3) + bytes([7, 0, 9]))
    assert read_idx(images).shape == (2, 28, 28) and read_idx(images)[0, 0, 5] == 5
    assert read_idx(labels).tolist() == [7, 0, 9]


def test_a_missing_mnist_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"neither .* found; set SHAREDSG_DATA .*`sharedsg data download mnist`"):
        load_mnist(tmp_path / "mnist", "train")
