"""``experiment.storage=s3://...`` against a real S3 endpoint on this machine (moto's server, not AWS).

A ``moto.server.ThreadedMotoServer`` on 127.0.0.1 speaks the S3 REST protocol; pyarrow's
``S3FileSystem`` (the storage layer's) reaches it through the standard AWS variables every AWS
SDK reads: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION`` (docs/clusters.md). A short Omniglot job (``sharedsg sweep --local``)
writes its TensorBoard events, checkpoint, validation curve and ``results.json`` into the
bucket; they are read back from S3 (events downloaded, then read with EventAccumulator), and the
same command on a machine without the first run's local files resumes from the S3 checkpoint.
A short trajectory run (``sharedsg run --local``) writes its events and ``results.json`` there too.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
from pathlib import Path

import pytest

pafs = pytest.importorskip("pyarrow.fs")
moto_server = pytest.importorskip("moto.server")

from sharedsg.cli import main  # noqa: E402
from sharedsg.config import cache_dir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUCKET = "sharedsg-test"
TINY = ["fewshot.methods=[baseline]", "fewshot.meta_iterations=3", "fewshot.meta_batch=1", "fewshot.queries=2",
        "fewshot.test_episodes=4", "fewshot.checkpoint_every=1", "fewshot.log_every=1", "fewshot.val_every=2",
        "fewshot.val_episodes=2", "model.conv_channels=4", "model.slot_width=8", "sg.hidden=8",
        "experiment.progress=false"]


@pytest.fixture(scope="module")
def s3():
    """A local S3 endpoint with one bucket; the AWS variables point pyarrow at it."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(k, v)
    fs = pafs.S3FileSystem(endpoint_override=f"http://{host}:{port}", access_key="testing", secret_key="testing",
                           region="us-east-1", allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    yield fs
    mp.undo()
    server.stop()


@pytest.fixture
def local(tmp_path, monkeypatch):
    """This machine's own files (the URI's staging folder) in tmp_path; the Omniglot cache where it is."""
    data_cache = cache_dir()
    monkeypatch.setenv("SHAREDSG_CACHE", str(tmp_path / "cache"))
    return [f"data.cache_dir={data_cache}"]


def _objects(fs, prefix: str):
    return {i.path[len(prefix) + 1:]: i for i in fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
            if i.type == pafs.FileType.File}


def _events(fs, prefix: str, into: Path):
    """Download a TensorBoard folder from S3 and read its scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    into.mkdir(parents=True)
    pafs.copy_files(prefix, str(into), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    acc = EventAccumulator(str(into), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.needs_data("omniglot")
def test_a_job_writes_events_checkpoint_and_results_to_s3_and_resumes_from_there(s3, local, tmp_path, capsys):
    storage_uri = f"s3://{BUCKET}/runs"
    args = ["sweep", str(REPO / "configs/omniglot/5w1s.yaml"), "--local", f"experiment.storage={storage_uri}",
            *TINY, *local]
    assert main(args) == 0, capsys.readouterr().err[-2000:]
    run = f"{BUCKET}/runs/omniglot_5w1s/main"
    objects = _objects(s3, run)
    assert {"results.json", "5w1s-baseline/checkpoint.pt", "5w1s-baseline/curve.png"} <= set(objects), sorted(objects)
    assert any(name.startswith("5w1s-baseline/events.out.tfevents.") for name in objects), sorted(objects)
    assert not any(name.startswith(".sharedsg-probe") for name in objects)  # the write probes are removed
    with s3.open_input_stream(f"{run}/results.json") as f:
        results = json.loads(f.read())
    job = results["jobs"]["5w1s-baseline"]
    assert results["path"] == f"{storage_uri}/omniglot_5w1s/main"
    assert job["meta_iterations"] == 3 and job["test_episodes"] == 4
    ev = _events(s3, f"{run}/5w1s-baseline", tmp_path / "events")
    assert [s for s, _ in ev["accuracy/query_train"]] == [1, 2, 3]
    assert [s for s, _ in ev["accuracy/val"]] == [0, 2, 3]
    assert ev["accuracy/test_running"][-1] == (4, pytest.approx(job["accuracy"]))
    # another machine (no staging folder, no local file of the first run) runs the same command:
    # the job resumes from its checkpoint in S3 and trains nothing again
    first_ckpt = objects["5w1s-baseline/checkpoint.pt"].mtime
    capsys.readouterr()
    shutil.rmtree(tmp_path / "cache")
    assert main(args) == 0
    assert "5w1s-baseline: resumed at iteration 3, test episode 4" in capsys.readouterr().err
    with s3.open_input_stream(f"{run}/results.json") as f:
        again = json.loads(f.read())["jobs"]["5w1s-baseline"]
    assert again["accuracy"] == job["accuracy"] and again["meta_iterations"] == 3
    assert again["train_wall_s"] == pytest.approx(job["train_wall_s"], abs=0.05)  # not trained again
    assert _objects(s3, run)["5w1s-baseline/checkpoint.pt"].mtime >= first_ckpt


def test_a_trajectory_run_writes_its_events_and_results_to_s3(s3, local, tmp_path, capsys):
    args = ["run", str(REPO / "configs/local_small.yaml"), "--local", f"experiment.storage=s3://{BUCKET}/runs",
            "experiment.iterations=3", "experiment.eval_every=3", "experiment.run_name=r", "experiment.progress=false",
            *local]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"results: s3://{BUCKET}/runs/local_small/r/results.json" in out
    run = f"{BUCKET}/runs/local_small/r"
    with s3.open_input_stream(f"{run}/results.json") as f:
        assert json.loads(f.read())["streams"]["cyclist"]["steps"] == 3
    ev = _events(s3, f"{run}/cyclist", tmp_path / "events")
    assert [s for s, _ in ev["loss/train"]] == [0, 1, 2], sorted(ev)


def test_a_bucket_that_does_not_exist_is_one_line_and_writes_nothing(s3, local, tmp_path, capsys):
    args = ["run", str(REPO / "configs/local_small.yaml"), "--local", "experiment.storage=s3://no-such-bucket/runs",
            "experiment.iterations=2", *local]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sharedsg: error: experiment.storage: s3://no-such-bucket/runs/"), err
    assert "not writable" in err[0] and "bucket does not exist" in err[0], err
    assert not (tmp_path / "cache").exists()  # no staging folder either
    assert [b.path for b in s3.get_file_info(pafs.FileSelector("/"))] == [BUCKET]  # no bucket made either


def test_an_unreachable_endpoint_is_one_line(local, tmp_path, capsys, monkeypatch):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    args = ["run", str(REPO / "configs/local_small.yaml"), "--local", f"experiment.storage=s3://{BUCKET}/runs",
            "experiment.iterations=2", *local]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not writable" in err[0] and "Could not connect" in err[0], err
    assert not (tmp_path / "cache").exists()
