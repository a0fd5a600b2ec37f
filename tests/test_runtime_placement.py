"""GPU placement on a real two-node Ray whose worker alone declares a GPU (Ray declares GPUs that
need not exist: ``resources.require_cuda=false`` lets the streams compute on the CPU).

- the knowledge-sharing demo (shrunk) with ``gpus_per_stream=auto`` packs its four streams on
  the one GPU (0.25 each) and completes;
- with ``gpus_per_stream=1`` it stops within ``placement_timeout_s``: one line, exit 2, no run
  folder, no actor and no reservation left;
- streams land on the GPU worker and the server where ``server_gpus`` says (Ray's actor table);
- a stream handed a GPU by a CPU-only torch stops with one line.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402
from ray.util.placement_group import placement_group_table  # noqa: E402

from sharedsg.config import load_config  # noqa: E402
from sharedsg.harness.runlog import RunLog, run_path  # noqa: E402
from sharedsg.runtime import NAMESPACE  # noqa: E402
from sharedsg.runtime.cluster import connection, launcher  # noqa: E402
from sharedsg.runtime.hosting import placement  # noqa: E402
from sharedsg.bench.raytools import TINY, tiny_config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEMO = [  # configs/knowledge_sharing.yaml, shrunk: one seed, a few iterations, a tiny NMN
    "experiment.seeds=[0]", "experiment.iterations=4", "experiment.eval_every=2", "experiment.eval_batches=1",
    "experiment.progress=false", "model.slot_width=8", "model.encoder_hidden=8", "sg.hidden=8",
    "learner.batch_size=8", "data.obs_len=8", "data.pred_len=8", "data.window_stride=8",
    "streams.pedestrian.schedule.start=1", "streams.pedestrian.schedule.every=2",
    "resources.cpus_per_stream=0.5", "resources.server_cpus=0.5", "resources.require_cuda=false",
]


@pytest.fixture(scope="module")
def cluster(own_ray):
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "num_gpus": 0,
                                                      "object_store_memory": 100 * 1024 * 1024})
    worker = c.add_node(num_cpus=4, num_gpus=1, object_store_memory=100 * 1024 * 1024)
    c.wait_for_nodes()
    connection.connect(c.address)
    yield c, worker.node_id
    connection.disconnect()
    c.shutdown()


def cli(*args, timeout=240):
    env = dict(os.environ, RAY_ADDRESS="")
    return subprocess.run([sys.executable, "-m", "sharedsg.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sharedsg: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def run_pgs():
    return [p for p in placement_group_table().values() if p["state"] != "REMOVED"]


@pytest.mark.slow  # a two-node cluster, the CLI in a subprocess
def test_auto_packs_the_demo_streams_on_one_gpu(cluster, tmp_path):
    c, _ = cluster
    proc = cli("run", "configs/knowledge_sharing.yaml", *DEMO, "resources.gpus_per_stream=auto",
               f"experiment.storage={tmp_path}", "experiment.run_name=auto", "--address", c.address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "knowledge_sharing" / "auto" / "results.json").read_text())
    assert results["seeds"] == [0] and set(results["mse"]) == {"cyclist", "pedestrian"}
    # Ray's record of the run's placement group: 4 stream bundles of a quarter GPU, 3 SG groups
    pgs = [p for p in placement_group_table().values() if any("GPU" in b for b in p["bundles"].values())]
    assert pgs and all(p["state"] == "REMOVED" for p in pgs)  # released at the end of the run
    bundles = list(pgs[-1]["bundles"].values())
    assert sorted(b.get("GPU", 0.0) for b in bundles) == [0.0, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25]
    assert placement.stream_gpus(load_config(REPO / "configs/knowledge_sharing.yaml", DEMO), 4, 3) == 0.25


@pytest.mark.slow  # a two-node cluster, the CLI in a subprocess
def test_more_gpus_than_the_cluster_has_stop_in_time_with_one_line(cluster, tmp_path):
    c, _ = cluster
    started = time.monotonic()
    proc = cli("run", "configs/knowledge_sharing.yaml", *DEMO, "resources.gpus_per_stream=1",
               "resources.placement_timeout_s=3", f"experiment.storage={tmp_path / 'runs'}", "--address", c.address)
    elapsed = time.monotonic() - started
    line = one_error_line(proc)
    for needle in ("placement", "resources.placement_timeout_s", "4 streams", "GPU: 1", "GPU: 4",
                   "resources.gpus_per_stream"):
        assert needle in line, line
    assert elapsed < 60, elapsed  # 3 s of waiting plus starting Python and joining the cluster
    assert not (tmp_path / "runs").exists()  # nothing written
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a.get("namespace") == NAMESPACE]
    assert names == []
    assert run_pgs() == []  # the reservation was given back


@pytest.mark.slow  # a two-node cluster
def test_streams_on_the_gpu_worker_server_where_server_gpus_says(cluster, tmp_path):
    import ray._private.state as ray_state

    _, worker = cluster
    cfg = tiny_config(tmp_path, "experiment.name=placed", "resources.gpus_per_stream=0.25",
                      "resources.server_gpus=0.5", "resources.require_cuda=false",
                      "resources.cpus_per_stream=0.5", "resources.server_cpus=0.5")
    log = RunLog(run_path(cfg))
    backend = launcher.ray_backend(cfg, log)
    try:
        # the group actor starts when it is placed, before any stream registers: it boots beside them
        assert ray.get_actor("sggroup:placed:shared", namespace=NAMESPACE) is not None
        backend.add_streams(cfg.streams)
        backend.train(list(cfg.streams), 0)
        actors = {a["Name"]: a for a in ray_state.actors().values() if a["State"] == "ALIVE"}
        nodes = {name: a["Address"]["NodeID"] for name, a in actors.items() if name}
        # server_gpus > 0: the SG group's actor (the one that trains) on the GPU node; the registry
        # takes no resources and stays beside the driver
        assert nodes["sggroup:placed:shared"] == worker
        assert nodes["stream:placed:cyclist"] == worker and nodes["stream:placed:pedestrian"] == worker
        (pg,) = run_pgs()
        assert sorted(b.get("GPU", 0.0) for b in pg["bundles"].values()) == [0.25, 0.25, 0.5]
        assert set(pg["bundles_to_node_id"].values()) == {worker}
    finally:
        backend.close()
        log.close()
    assert run_pgs() == []


@pytest.mark.slow  # a two-node cluster, the CLI in a subprocess
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a torch without CUDA")
def test_a_gpu_on_a_cpu_only_torch_is_one_line(cluster, tmp_path):
    c, _ = cluster
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("experiment: {name: cpu-torch, iterations: 2, eval_every: 1, progress: false}\n"
                   "streams:\n  cyclist: {data_class: cyclist}\n")
    proc = cli("run", str(cfg), *TINY, "resources.gpus_per_stream=1", "resources.placement_timeout_s=20",
               f"experiment.storage={tmp_path / 'runs'}", "--address", c.address)
    line = one_error_line(proc)
    assert "CPU-only torch" in line and "resources.gpus_per_stream=0" in line, line
    assert run_pgs() == []


def test_auto_shares_fit_the_gpus_there_are():
    assert placement.auto_share(4, 1) == 0.25  # the demo's four streams on one GPU
    assert placement.auto_share(3, 2) == 0.5  # 1/2 packs two to a GPU: 3 streams fit 2 GPUs
    assert placement.auto_share(3, 1) == pytest.approx(0.3333) and 3 * placement.auto_share(3, 1) <= 1.0
    assert placement.auto_share(2, 8) == 1.0  # never more than one GPU a stream
    assert placement.auto_share(4, 0) == 0.0  # no GPU: CPU
    assert placement.whole_gpus([0.0, 1.0, 2.5]) == 3
    assert placement.parse_gpus("auto") is None and placement.parse_gpus("0.25") == 0.25
    with pytest.raises(ValueError):
        placement.parse_gpus("-1")
    cfg = load_config(None, ["resources.max_gpus=2", "resources.server_gpus=0.5"])  # an autoscaler's GPUs
    assert placement.stream_gpus(cfg, 4, 1) == 0.25  # floor(2 - 0.5) = 1 GPU left for 4 streams
