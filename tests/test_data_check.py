"""``sharedsg data check`` without the real data: no root at all, empty dataset folders (what an
interrupted download used to leave), a damaged file; the shipped sample is always listed."""

from __future__ import annotations

import json
import subprocess
import sys

from sharedsg.data.check import check_root
from sharedsg.commands.data import main
from sharedsg.data.errors import HOW_TO_GET
from sharedsg.data.sample import SAMPLE_PATH

DATASETS = ["omniglot", "mnist", "sdd", "ind", "sample"]


def test_no_data_folder_lists_every_dataset_absent_and_the_sample_and_exits_0(tmp_path):
    root = tmp_path / "nowhere"
    result = subprocess.run([sys.executable, "-m", "sharedsg.cli", "data", "check", "--root", str(root)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"data root: {root} (no such folder: every dataset absent)"
    assert [line.split()[:2] for line in lines[1:]] == [[n, "absent"] for n in DATASETS[:-1]] + [["sample", "present"]]
    for name, line in zip(DATASETS, lines[1:]):
        if name != "sample":
            assert line.endswith(f"to get it: {HOW_TO_GET[name]}")
    assert "tracks: " in lines[-1] and str(SAMPLE_PATH) in lines[-1]
    assert not root.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_empty_dataset_folders_are_absent(tmp_path, capsys):
    for name in ("omniglot", "mnist", "sdd", "ind"):
        (tmp_path / name).mkdir()
    assert main(["data", "check", "--root", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["root_exists"] is True
    assert {n: e["status"] for n, e in report["datasets"].items()} == {
        "omniglot": "absent", "mnist": "absent", "sdd": "absent", "ind": "absent", "sample": "present"}
    assert report["datasets"]["sample"]["tracks"] == check_root(tmp_path)["datasets"]["sample"]["tracks"]


def test_a_damaged_file_is_damaged_exit_1_and_the_others_still_listed(tmp_path, capsys):
    (tmp_path / "omniglot").mkdir()
    for name in ("images_background.npz", "images_evaluation.npz"):
        (tmp_path / "omniglot" / name).write_bytes(b"not a zip")
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    assert main(["data", "check", "--root", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    status = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert status == {"omniglot": "damaged", "mnist": "damaged", "sdd": "absent", "ind": "absent", "sample": "present"}
    omniglot = next(line for line in lines if line.split()[0] == "omniglot")
    assert "images_background.npz: corrupted npz" in omniglot and "download it again" in omniglot
