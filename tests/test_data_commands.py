"""``sharedsg data ...`` and ``sharedsg bench data`` end to end on the real data root."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

import pytest

from sharedsg.bench.data import run_data_bench
from sharedsg.config import data_root
from sharedsg.commands.data import main
from sharedsg.data.sample import SAMPLE_PATH


@pytest.mark.needs_data("omniglot", "mnist", "sdd")
def test_check_json_prints_the_counts():
    result = subprocess.run(
        [sys.executable, "-m", "sharedsg.commands.data", "data", "check", "--root", str(data_root()), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    datasets = json.loads(result.stdout)["datasets"]
    omniglot, mnist, sdd = datasets["omniglot"], datasets["mnist"], datasets["sdd"]
    assert (omniglot["characters"], omniglot["images"]) == (1623, 32460)
    assert (omniglot["train_characters"], omniglot["test_characters"], omniglot["characters_in_both_splits"]) == (1200, 423, 0)
    assert (mnist["train"], mnist["test"]) == (60000, 10000)
    assert mnist["train_per_class"] == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert sdd["tracks"] == {"cyclist": 358, "pedestrian": 617}
    assert datasets["ind"] == {"status": "absent", "how": "copy your inD recordings there (inD is licensed on request, https://www.ind-dataset.com)"}
    for entry in (omniglot, mnist, sdd):
        assert entry["status"] == "present" and set(entry["checksums"].values()) == {"ok"}


@pytest.mark.needs_data("mnist")
def test_check_reports_a_mismatch(tmp_path, capsys):
    shutil.copytree(data_root() / "mnist", tmp_path / "mnist")
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-100])
    assert main(["data", "check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "mnist     damaged  " in out and "t10k-labels-idx1-ubyte.gz" in out
    assert "omniglot  absent   to get it: run `sharedsg data download omniglot`" in out


@pytest.mark.needs_data("mnist")
def test_a_partial_root_lists_present_and_absent(tmp_path, capsys):
    shutil.copytree(data_root() / "mnist", tmp_path / "mnist")
    (tmp_path / "omniglot").mkdir()  # an empty folder: absent
    assert main(["data", "check", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[1:]] == [
        ["omniglot", "absent"], ["mnist", "present"], ["sdd", "absent"], ["ind", "absent"], ["sample", "present"]]
    assert "train 60000, test 10000; raw MD5 ok" in lines[2]


@pytest.mark.needs_data("sdd")
def test_build_sample_command(tmp_path):
    out = tmp_path / "s.npz"
    assert main(["data", "build-sample", "--sdd", str(data_root() / "sdd"), "--out", str(out)]) == 0
    assert out.read_bytes() == SAMPLE_PATH.read_bytes()


@pytest.mark.needs_data("omniglot")
def test_download_from_file_url_checks_sha256(tmp_path, capsys):
    url = (data_root() / "omniglot").resolve().as_uri()
    assert main(["data", "download", "omniglot", "--root", str(tmp_path / "root"), "--url", url]) == 0
    got = tmp_path / "root" / "omniglot" / "images_background.npz"
    assert got.read_bytes() == (data_root() / "omniglot" / "images_background.npz").read_bytes()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in ("images_background.npz", "images_evaluation.npz"):
        data = bytearray((data_root() / "omniglot" / name).read_bytes())
        data[1000] ^= 0xFF
        (mirror / name).write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["data", "download", "omniglot", "--root", str(tmp_path / "other"), "--url", str(mirror)]) == 2
    assert "is not the expected 8bf84167" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()  # nothing left behind


@pytest.mark.needs_data("mnist")
def test_download_mnist_checks_raw_md5(tmp_path):
    assert main(["data", "download", "mnist", "--root", str(tmp_path), "--url", str(data_root() / "mnist")]) == 0
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(p.name for p in (data_root() / "mnist").iterdir())


@pytest.mark.needs_data("omniglot")
def test_bench_data_reports_rates():
    result = run_data_bench(argparse.Namespace(root=None, queries=5, seconds=0.2))
    assert result["omniglot_images"] == 32460
    assert result["omniglot_warm_load_s"] < 5.0
    for key in ("episodes_per_s_5way_1shot", "episodes_per_s_20way_5shot", "omniglot_cold_load_s"):
        assert result[key] > 0
    json.dumps(result)  # one JSON object for --json
