"""Launch, attach, status, stop and refusals on a two-node Ray cluster on this machine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from omegaconf import OmegaConf  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from sharedsg.harness.runlog import RunLog, run_path  # noqa: E402
from sharedsg.config import ConfigError  # noqa: E402
from sharedsg.runtime.cluster import connection, launcher, ops  # noqa: E402
from sharedsg.runtime.service.registry import experiments  # noqa: E402
from sharedsg.bench.raytools import tiny_config, tiny_yaml  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

EXPERIMENT = "attach-exp"


@pytest.fixture(scope="module")
def cluster(own_ray):
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "num_gpus": 0,
                                                      "object_store_memory": 100 * 1024 * 1024})
    c.add_node(num_cpus=2, num_gpus=0, object_store_memory=100 * 1024 * 1024)
    c.wait_for_nodes()
    yield c
    connection.disconnect()
    c.shutdown()


def cli(*args, timeout=180):
    env = dict(os.environ, RAY_ADDRESS="", CUDA_VISIBLE_DEVICES="")  # no GPU for this test's Rays
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


@pytest.mark.slow  # a two-node cluster, the CLI in subprocesses
def test_attach_status_stop(cluster, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(tmp_path / "runs", f"experiment.name={EXPERIMENT}", "experiment.attachable=true")
    log = RunLog(run_path(cfg))
    backend = launcher.ray_backend(cfg, log, address=cluster.address)
    backend.add_streams(cfg.streams)
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
    assert EXPERIMENT in experiments()
    proc = cli("stop", "--experiment", EXPERIMENT, "--address", cluster.address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = cli("status", "--address", cluster.address)
    assert proc.returncode == 0 and "no experiments running" in proc.stdout
    # the attachable server's detached bundles went with it: nothing stays reserved
    from ray.util.placement_group import placement_group_table

    assert [p for p in placement_group_table().values() if p["state"] != "REMOVED"] == []


def test_address_without_cluster_is_refused(tmp_path):
    cfg = tiny_yaml(tmp_path / "tiny.yaml", tmp_path / "runs")
    line = assert_one_line_error(cli("run", str(cfg), "--address", "127.0.0.1:9", timeout=60), "127.0.0.1:9")
    assert "no Ray cluster" in line


def _sigint_as_in_a_terminal() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.slow  # a two-node cluster and `sharedsg run` starting Ray in a subprocess
def test_ctrl_c_stops_cleanly_and_keeps_what_was_written(cluster, tmp_path):
    """Ctrl-C in a terminal (SIGINT to the whole process group, Ray's processes included) during
    a run on an embedded Ray: exit 130 with one line and no traceback; the TensorBoard events and
    the checkpoints written so far stay readable; no Ray process is left behind. Another Ray
    (``cluster``) runs on this machine meanwhile: without --address the command still starts
    its own."""
    import signal
    import time

    import psutil
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_yaml(tmp_path / "tiny.yaml", tmp_path / "runs", name="ctrlc",
                    extra="resources: {stream_checkpoint_every: 2}")
    env = dict(os.environ, RAY_ADDRESS="", CUDA_VISIBLE_DEVICES="")
    # output into files, not pipes: the test waits for the command itself, not for every process
    # that might hold a pipe's end (what is left behind is checked below)
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_path, "w") as out_f, open(err_path, "w") as err_f:
        proc = subprocess.Popen([sys.executable, "-m", "sharedsg.cli", "run", str(cfg), "experiment.iterations=100000",
                                 "experiment.run_name=r"], stdout=out_f, stderr=err_f, text=True,
                                env=env, start_new_session=True,
                                # as a terminal starts it: SIGINT at its default and not blocked even if
                                # this test process ignores or blocks it (a child inherits both)
                                preexec_fn=_sigint_as_in_a_terminal)
    run = tmp_path / "runs" / "ctrlc" / "r"
    ckpt = run / "checkpoints" / "stream-cyclist.pt"
    try:
        deadline = time.monotonic() + 150
        while not (ckpt.exists() and list((run / "cyclist").glob("events.*"))):
            assert proc.poll() is None and time.monotonic() < deadline, err_path.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(3)  # a few more steps
        children = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = err_path.read_text()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith("sharedsg:")] == [
        "sharedsg: interrupted; what was written is kept"], err[-3000:]
    steps = [e.step for e in EventAccumulator(str(run / "cyclist")).Reload().Scalars("loss/train")]
    assert len(steps) >= 2
    saved = torch.load(ckpt, weights_only=True)
    assert saved["learner"]["steps"] >= 2
    assert json.loads((run / "checkpoints" / "server.json").read_text())["pushes"] >= 0
    # actors end by themselves (no signal: docs/runtime.md, "Ending actors"); their interpreters take ~1 s to exit
    deadline = time.monotonic() + 30
    while True:
        alive = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not alive, [p.cmdline()[:2] for p in alive]


@pytest.mark.parametrize("text, needle", [
    ("- cyclist2\n", "the top level must be a mapping of settings"),
    ("streams: 3\n", "config error: streams: must be a mapping of settings, got 3"),
    ("streams:\n  late:\n    schedule:\n      every: 0\n", "config error: streams.late.schedule.every: must be positive, got 0"),
    ("streams:\n  ../escaped:\n    data_class: cyclist\n", "streams: the stream name '../escaped' must be one folder name"),
    ("streams:\n  late:\n    group: /tmp/g\n", "streams.late.group: '/tmp/g' must be empty or one folder name"),
])
def test_attach_config_refuses_a_malformed_stream_config(tmp_path, text, needle):
    """No Ray needed: the stream config is checked on the driver before anything connects."""
    path = tmp_path / "streams.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        ops.attach_config(OmegaConf.to_container(tiny_config(tmp_path)), str(path), [])
    assert needle in str(info.value) and "\n" not in str(info.value)


INLINE_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
import ray
from ray._private.internal_api import memory_summary
from sharedsg.runtime.cluster import connection
from sharedsg.bench.raytools import tiny_config

for kb in (2048, 100):  # the default, then Ray's own limit
    connection.connect(None, tiny_config(sys.argv[1], f"resources.inline_object_kb={kb}"), num_cpus=1)
    f = ray.remote(lambda: np.zeros(500_000 // 8))  # a push of a batch-16 stream is ~400 KB
    ray.get([f.remote() for _ in range(4)])
    summary = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)  # this Ray, not the newest
    line = next(s for s in summary.splitlines() if s.startswith("Plasma memory usage"))
    print(kb, line, flush=True)
    connection.disconnect()
"""


@pytest.mark.slow  # two Rays started in a subprocess
def test_embedded_ray_sends_objects_up_to_inline_object_kb_inline(tmp_path):
    """The Ray that `sharedsg run` starts passes results (a stream's push, a group's SG weights) of up
    to ``resources.inline_object_kb`` inline, not through the object store; at Ray's own 100 KB
    the same four 500 KB results land in the store."""
    env = dict(os.environ, RAY_ADDRESS="")
    proc = subprocess.run([sys.executable, "-c", INLINE_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=180,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert ", 0 objects" in lines["2048"], proc.stdout
    assert ", 4 objects" in lines["100"], proc.stdout


@pytest.mark.slow
def test_the_embedded_ray_starts_without_the_token_warning(tmp_path):
    """``sharedsg run`` on its embedded Ray: token authentication is on (RAY_AUTH_MODE=token, set by
    sharedsg) and Ray prints no warning about it; a RAY_AUTH_MODE the user set is kept."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    command = [sys.executable, "-m", "sharedsg.cli", "run", str(REPO / "configs" / "local_small.yaml"),
               "experiment.iterations=1", "experiment.progress=false", f"experiment.storage={tmp_path}"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Token authentication" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr[-2000:]
    script = "from sharedsg.runtime.cluster import connection; import os; connection.token_auth_for_embedded_ray(); print(os.environ['RAY_AUTH_MODE'])"
    for given, want in ((None, "token"), ("disabled", "disabled")):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                             env=dict(env, **({"RAY_AUTH_MODE": given} if given else {})))
        assert out.stdout.strip() == want, out.stderr[-2000:]

