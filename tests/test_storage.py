"""``experiment.storage``: one location for every node (local path, shared path, or a URI via pyarrow)."""

import os
from pathlib import Path

import pytest
import torch

from sharedsg import checkpoint, storage
from sharedsg.config import ConfigError, load_config
from sharedsg.errors import UserError
from sharedsg.harness.runlog import RunLog, run_path


def test_relative_storage_is_made_absolute_on_the_driver(tmp_path):
    assert storage.resolve_root("runs", cwd=tmp_path) == str(tmp_path / "runs")
    assert storage.resolve_root("/abs/runs", cwd=tmp_path) == "/abs/runs"
    assert storage.resolve_root("s3://bucket/runs/", cwd=tmp_path) == "s3://bucket/runs"
    assert storage.resolve_root("~/runs", cwd=tmp_path) == str(Path.home() / "runs")
    # inside a `ray job submit --working-dir` package (deleted with Ray's session): under the home folder
    pkg = tmp_path / "session_x" / "runtime_resources" / "working_dir_files" / "_ray_pkg_abc"
    assert storage.resolve_root("runs", cwd=pkg, home=tmp_path / "home") == str(tmp_path / "home" / "runs")


def test_config_storage_and_its_former_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, [])
    assert cfg.experiment.storage == cfg.experiment.run_dir == str(tmp_path / "runs")
    cfg = load_config(None, ["experiment.run_dir=old"])
    assert cfg.experiment.storage == cfg.experiment.run_dir == str(tmp_path / "old")
    with pytest.raises(ConfigError, match="run_dir is the former name of storage"):
        load_config(None, ["experiment.run_dir=/a", "experiment.storage=/b"])


def test_checkpoints_through_a_local_location(tmp_path):
    where = storage.join(tmp_path, "exp", "run", "checkpoints", "stream-a.pt")
    assert checkpoint.load(where) is None
    checkpoint.save(where, {"w": torch.ones(2), "seq": 3})
    assert checkpoint.load(where)["seq"] == 3
    assert [p.name for p in (tmp_path / "exp" / "run" / "checkpoints").iterdir()] == ["stream-a.pt"]  # no tmp left


def test_unwritable_storage_is_one_line_and_creates_nothing(tmp_path):
    with pytest.raises(UserError) as err:  # /proc takes no files, not even from root
        RunLog("/proc/sharedsg-runs/exp/run")
    line = str(err.value)
    assert "\n" not in line and "not writable" in line and "experiment.storage" in line, line
    assert not os.path.exists("/proc/sharedsg-runs")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        storage.check_writable(tmp_path / "file" / "runs")
    storage.check_writable(tmp_path / "new" / "deep")  # a folder still to be made under a writable one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_the_run_folder_appears_with_the_first_write(tmp_path):
    cfg = load_config(None, [f"experiment.storage={tmp_path / 'runs'}", "experiment.run_name=r"])
    log = RunLog(run_path(cfg))
    assert not (tmp_path / "runs").exists()
    log.scalars("cyclist", 0, {"loss/train": 1.0})
    log.close()
    assert list((tmp_path / "runs" / "experiment" / "r" / "cyclist").glob("events.*"))


def test_a_uri_that_went_through_pathlib_is_restored():
    assert storage.location(Path("s3://bucket/runs") / "job" / "checkpoint.pt") == "s3://bucket/runs/job/checkpoint.pt"
    assert storage.location("/tmp/x") == "/tmp/x"
    assert storage.join("gs://b/r", "exp", "run") == "gs://b/r/exp/run"


def test_file_uri_through_pyarrow(tmp_path):
    """With pyarrow: checkpoints and the run log through a file:// URI; without: one line naming pyarrow."""
    uri = f"file://{tmp_path}/store"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(UserError) as err:
            checkpoint.save(storage.join(uri, "run", "c.pt"), {"a": 1})
        assert "pyarrow" in str(err.value) and "\n" not in str(err.value)
        return
    where = storage.join(uri, "run", "checkpoints", "c.pt")
    checkpoint.save(where, {"a": torch.zeros(1)})
    assert checkpoint.load(where)["a"].shape == (1,)
    assert (tmp_path / "store" / "run" / "checkpoints" / "c.pt").is_file()
    log = RunLog(storage.join(uri, "exp", "r"))
    log.scalars("cyclist", 0, {"loss/train": 1.0})
    log.close()
    assert list((tmp_path / "store" / "exp" / "r" / "cyclist").glob("events.*"))


def test_a_run_log_uploads_only_what_changed(tmp_path):
    """``upload_dir`` (a URI run log's flush): new and changed files go up, unchanged ones do not."""
    pytest.importorskip("pyarrow")
    local, remote = tmp_path / "staging", tmp_path / "store"
    (local / "a").mkdir(parents=True)
    (local / "a" / "events").write_bytes(b"1")
    (local / "fig.png").write_bytes(b"png")
    uri = f"file://{remote}/run"
    storage.upload_dir(local, uri)
    assert (remote / "run" / "a" / "events").read_bytes() == b"1" and (remote / "run" / "fig.png").read_bytes() == b"png"
    (remote / "run" / "fig.png").write_bytes(b"marked")  # would be overwritten by a second upload of fig.png
    with open(local / "a" / "events", "ab") as f:  # an event file that grew
        f.write(b"2")
    (local / "results.json").write_text("{}")
    storage.upload_dir(local, uri)
    assert (remote / "run" / "a" / "events").read_bytes() == b"12"
    assert (remote / "run" / "results.json").read_text() == "{}"
    assert (remote / "run" / "fig.png").read_bytes() == b"marked"  # unchanged here: not sent again
