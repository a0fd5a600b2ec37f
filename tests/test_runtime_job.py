"""Launch, attach, status, stop and refusals on a two-node Ray cluster on this machine."""

import json
import os
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from sharedsg.experiments.runlog import RunLog, run_path  # noqa: E402
from sharedsg.runtime import job  # noqa: E402
from sharedsg.runtime.testing import tiny_config, tiny_yaml  # noqa: E402

EXPERIMENT = "attach-exp"


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "object_store_memory": 100 * 1024 * 1024})
    c.add_node(num_cpus=2, object_store_memory=100 * 1024 * 1024)
    c.wait_for_nodes()
    yield c
    job.disconnect()
    c.shutdown()


def cli(*args, timeout=180):
    env = dict(os.environ, RAY_ADDRESS="")
    return subprocess.run([sys.executable, "-m", "sharedsg.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sharedsg: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_attach_status_stop(cluster, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(tmp_path / "runs", f"experiment.name={EXPERIMENT}", "experiment.attachable=true")
    log = RunLog(run_path(cfg))
    backend = job.ray_backend(cfg, log, address=cluster.address)
    for name, s in cfg.streams.items():
        backend.add_stream(name, s)
    for it in range(3):
        backend.train(list(cfg.streams), it)

    # a second driver attaches a stream to the running experiment
    stream_yaml = tmp_path / "late.yaml"
    stream_yaml.write_text("experiment: {iterations: 4, eval_every: 2}\nstreams:\n  late: {data_class: cyclist}\n")
    proc = cli("attach", "--experiment", EXPERIMENT, str(stream_yaml), "--address", cluster.address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["streams"]["late"]["steps"] == 4 and result["streams"]["late"]["group"] == "shared"
    acc = EventAccumulator(str(log.path / "late")).Reload()
    assert len(acc.Scalars("loss/train")) == 4 and "loss/eval" in acc.Tags()["scalars"]

    proc = cli("status", "--experiment", EXPERIMENT, "--address", cluster.address, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads(proc.stdout)[EXPERIMENT]
    assert set(state["streams"]) == {"cyclist", "pedestrian", "late"}
    assert state["streams"]["late"]["pushes"] == 4
    assert state["run_path"] == str(log.path.resolve())

    # refusals: wrong dimensions for the shared group; an experiment that does not exist
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("model: {slot_width: 16}\nstreams:\n  wide: {data_class: cyclist}\n")
    assert_one_line_error(cli("attach", "--experiment", EXPERIMENT, str(wrong), "--address", cluster.address),
                          "wide", "slot_width" if False else "group has 8")
    assert_one_line_error(cli("attach", "--experiment", "nope", str(stream_yaml), "--address", cluster.address),
                          "'nope'", "namespace 'sharedsg'", EXPERIMENT)

    for it in range(3, 5):  # the experiment's own streams go on
        backend.train(list(cfg.streams), it)
    backend.close()
    log.close()
    # attachable: the server outlives its driver until `sharedsg stop`
    assert EXPERIMENT in job.experiments()
    proc = cli("stop", "--experiment", EXPERIMENT, "--address", cluster.address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = cli("status", "--address", cluster.address)
    assert proc.returncode == 0 and "no experiments running" in proc.stdout


def test_address_without_cluster_is_refused(tmp_path):
    cfg = tiny_yaml(tmp_path / "tiny.yaml", tmp_path / "runs")
    line = assert_one_line_error(cli("run", str(cfg), "--address", "127.0.0.1:9", timeout=60), "127.0.0.1:9")
    assert "no Ray cluster" in line
