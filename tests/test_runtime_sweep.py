"""``sharedsg sweep`` on a real local Ray (the test run's shared one): Omniglot and MNIST jobs as actors.

For this module that Ray declares one GPU, which this machine does not have, for the tests of the jobs' device
(the other tests ask for none). With ``resources.gpus_per_job=1`` Ray hands a job actor GPU 0.
The driver's config there says ``learner.device=cuda:0`` (this machine has no CUDA), so a job
that kept the driver's device instead of the one its actor was assigned fails: with
``resources.require_cuda=false`` the assigned device of a CPU-only torch is ``cpu``, and the
results record it with Ray's GPU ids. With ``require_cuda=true`` (the default) the job stops
with one line instead of computing on the CPU. On a real GPU the assigned device is ``cuda``:
the same code, not run here (no GPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from sharedsg.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SMALL = ["model.conv_channels=4", "model.slot_width=8", "sg.hidden=8", "experiment.progress=false"]
FAKE_GPU = ["resources.gpus_per_job=1", "resources.require_cuda=false", "learner.device=cuda:0"]
pytestmark = pytest.mark.usefixtures("ray_session_one_gpu")  # the test run's Ray, with one GPU (tests/conftest.py)


def _events(directory: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow  # a whole Omniglot setting as Ray job actors, stopped and resumed: make test-all
@pytest.mark.needs_data("omniglot")
def test_omniglot_setting_as_actors_writes_results_and_resumes(tmp_path, capsys):
    args = ["sweep", str(REPO / "configs/omniglot/5w1s.yaml"), f"experiment.run_dir={tmp_path}",
            "fewshot.meta_iterations=2", "fewshot.meta_batch=1", "fewshot.adapt_steps=1", "fewshot.test_episodes=6",
            "fewshot.queries=2", "fewshot.checkpoint_every=1", "fewshot.methods=[proposed,baseline,maml]", *SMALL]
    assert main(args) == 0
    run = tmp_path / "omniglot_5w1s" / "main"
    results = json.loads((run / "results.json").read_text())
    assert set(results["jobs"]) == {"5w1s-proposed", "5w1s-baseline", "5w1s-maml"}
    for job in results["jobs"].values():
        assert 0.0 <= job["accuracy"] <= 1.0 and job["ci95"] >= 0.0 and job["test_episodes"] == 6
        assert job["meta_iterations"] == 2 and (run / job["job"] / "checkpoint.pt").is_file()
    assert results["jobs"]["5w1s-maml"]["maml_order"] == 2
    ev = _events(run / "5w1s-proposed")
    assert "accuracy/query_train" in ev and "accuracy/test_running" in ev
    # the same command again resumes from the checkpoints: nothing is re-trained
    capsys.readouterr()
    assert main(args) == 0
    again = json.loads((run / "results.json").read_text())
    for name, job in results["jobs"].items():
        assert again["jobs"][name]["accuracy"] == job["accuracy"]
        assert again["jobs"][name]["train_wall_s"] == pytest.approx(job["train_wall_s"], abs=0.05)
    assert _events(run / "5w1s-proposed") == ev  # and TensorBoard has each scalar once


@pytest.mark.needs_data("mnist")
def test_mnist_rare_batches_land_at_the_scheduled_iterations(tmp_path):
    period, iterations = 4, 14
    args = ["sweep", str(REPO / "configs/mnist_rare.yaml"), f"experiment.run_dir={tmp_path}",
            f"experiment.iterations={iterations}", f"rare.period={period}", "rare.test_every=5", "rare.test_images=40",
            "rare.checkpoint_every=5", "learner.batch_size=8", *SMALL]
    assert main(args) == 0
    run = tmp_path / "mnist_rare" / "main"
    results = json.loads((run / "results.json").read_text())
    assert set(results["jobs"]) == {"proposed", "baseline"}
    assert set(results["figures"]) == {"fig6", "fig7"} and Path(results["figures"]["fig6"]).is_file()
    for name in ("proposed", "baseline"):
        ev = _events(run / name)
        rare = [s for s, v in ev["schedule/rare"] if v > 0]
        assert rare == [4, 8, 12]  # counted from the TensorBoard events
        assert [s for s, _ in ev["schedule/rare"]] == list(range(iterations))
        assert [s for s, _ in ev["grad_norm/oc/synthetic"]] == list(range(iterations))
        assert [s for s, _ in ev["grad_norm/oc/true"]] == list(range(iterations))
        assert results["jobs"][name]["rare_iterations"] == [4, 8, 12]


ITERATIONS = 60  # the watched job's length: long enough to be seen running for a few progress ticks


@pytest.mark.needs_data("omniglot")
def test_jobs_show_progress_and_status_lists_them(tmp_path, capsys):
    """While an Omniglot sweep runs: its job actors answer `sharedsg status` (sweep, job, last
    progress line) and the driver prints a progress table every experiment.progress_every_s."""
    import threading
    import time

    from sharedsg.runtime.sweep import format_jobs, job_states

    args = ["sweep", str(REPO / "configs/omniglot/5w1s.yaml"), f"experiment.storage={tmp_path}",
            "experiment.progress_every_s=1", "fewshot.methods=[proposed]", f"fewshot.meta_iterations={ITERATIONS}",
            "fewshot.meta_batch=1", "fewshot.adapt_steps=1", "fewshot.test_episodes=4", "fewshot.queries=2",
            "fewshot.checkpoint_every=1", *SMALL]
    run = tmp_path / "omniglot_5w1s" / "main"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def on_disk() -> int:
        """How many accuracy/query_train scalars the job's event file holds now."""
        if not (run / "5w1s-proposed").is_dir():
            return 0
        acc = EventAccumulator(str(run / "5w1s-proposed"), size_guidance={"scalars": 0})
        acc.Reload()
        return len(acc.Scalars("accuracy/query_train")) if "accuracy/query_train" in acc.Tags()["scalars"] else 0

    def running(states):
        """The watched job, while it reports iterations (its status turns "done" before its results
        reach the driver)."""
        return [j for j in states.get("omniglot_5w1s/main", [])
                if j["status"] == "running" and "iteration" in j.get("message", "")]

    rc = []
    runner = threading.Thread(target=lambda: rc.append(main(args)))
    runner.start()
    seen, live = {}, 0
    deadline = time.monotonic() + 240
    while runner.is_alive() and time.monotonic() < deadline and not live:
        states = job_states()
        if running(states):
            seen = seen or {"states": states, "text": format_jobs(states)}
            n = on_disk()
            # scalars on disk and the job still running after they were read: the driver wrote
            # them while it ran, not only with its results
            live = n if n and running(job_states()) else 0
        time.sleep(0.2)
    runner.join(timeout=240)
    assert rc == [0]
    assert seen, "no job reported an iteration while the sweep ran"
    (job,) = seen["states"]["omniglot_5w1s/main"]
    assert job["job"] == "5w1s-proposed" and job["status"] == "running" and job["device"] == "cpu"
    assert job["gpu_ids"] == []  # the job asked for no GPU (resources.gpus_per_job=0)
    assert seen["text"].startswith("sweep omniglot_5w1s/main: 1 jobs running\n  job 5w1s-proposed: running")
    err = capsys.readouterr().err
    # the table printed while the job ran (which line it caught depends on the timing; the job's own
    # iteration messages were read from its actor above)
    assert "jobs done; the others:" in err and "5w1s-proposed: running" in err, err[-2000:]
    assert job_states() == {}  # the job actor is gone with its sweep
    # its scalars reached TensorBoard while it ran (the driver fetches them with each progress
    # table), not only with its results; each (tag, step) once
    assert live > 0, "no query_train scalar was on disk while the job ran"
    acc = EventAccumulator(str(run / "5w1s-proposed"), size_guidance={"scalars": 0})
    acc.Reload()
    train = acc.Scalars("accuracy/query_train")
    assert [e.step for e in train] == sorted({e.step for e in train}) and train[-1].step == ITERATIONS


# -- the jobs' device ----------------------------------------------------------------------------
ASSIGNED = "cuda" if torch.cuda.is_available() else "cpu"  # what Ray's GPU 0 is to this torch
ONE_JOB = ["fewshot.methods=[baseline]", "fewshot.meta_iterations=2", "fewshot.meta_batch=1", "fewshot.queries=2",
           "fewshot.test_episodes=2", "fewshot.checkpoint_every=1", *SMALL]


@pytest.mark.needs_data("omniglot")
def test_a_sweep_job_on_a_gpu_records_and_uses_its_assigned_device(tmp_path):
    args = ["sweep", str(REPO / "configs/omniglot/5w1s.yaml"), f"experiment.storage={tmp_path}", *ONE_JOB, *FAKE_GPU]
    assert main(args) == 0
    job = json.loads((tmp_path / "omniglot_5w1s" / "main" / "results.json").read_text())["jobs"]["5w1s-baseline"]
    assert job["gpu_ids"] == ["0"] and job["device"] == ASSIGNED
    assert job["test_episodes"] == 2 and 0.0 <= job["accuracy"] <= 1.0


@pytest.mark.needs_data("omniglot")
@pytest.mark.skipif(torch.cuda.is_available(), reason="about a CPU-only torch")
def test_a_gpu_job_on_a_cpu_only_torch_stops_with_one_line(tmp_path, capsys):
    args = ["sweep", str(REPO / "configs/omniglot/5w1s.yaml"), f"experiment.storage={tmp_path}", *ONE_JOB,
            "resources.gpus_per_job=1"]
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sharedsg: error:")]
    assert len(err) == 1 and "job 5w1s-baseline: Ray gave this actor GPU 0" in err[0], err
    assert "CPU-only torch" in err[0] and "resources.require_cuda=false" in err[0]


def test_a_job_that_finds_no_data_on_its_node_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    """On a cluster (``--address``) the driver leaves the data check to the jobs: a job actor that
    finds no data returns its one line (no retried task, no actor traceback), no job folder."""
    (tmp_path / "no-data").mkdir()
    args = ["sweep", str(REPO / "configs/omniglot/5w1s.yaml"), "--address", ray.get_runtime_context().gcs_address,
            f"experiment.storage={tmp_path / 'runs'}", f"data.root={tmp_path / 'no-data'}", *ONE_JOB]
    assert main(args) == 2
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("sharedsg: error:")]
    assert len(err) == 1 and err[0].startswith("sharedsg: error: job 5w1s-baseline: "), stderr
    assert "no-data/omniglot: no Omniglot images" in err[0]
    assert "ray::" not in stderr and "Traceback" not in stderr and "retry" not in stderr.lower(), stderr
    assert [p.name for p in (tmp_path / "runs").rglob("*")] == []


def test_meta_test_jobs_get_their_assigned_device(tmp_path):
    args = ["run", str(REPO / "configs/trajectory_metatest.yaml"), "data.format=sample", "data.obs_len=6",
            "data.pred_len=6", "model.slot_width=8", "model.slots=4", "model.encoder_hidden=8", "sg.hidden=16",
            "learner.batch_size=4", "metatest.pretrain_iterations=2", "metatest.adapt_iterations=2",
            "metatest.eval_windows=8", "metatest.adapt_examples=4", "metatest.seq2seq_hidden=8",
            "metatest.methods=[supervised]", "experiment.seeds=[0]", f"experiment.storage={tmp_path}",
            "experiment.run_name=r", *FAKE_GPU]
    assert main(args) == 0
    res = json.loads((tmp_path / "trajectory_metatest" / "r" / "results.json").read_text())
    assert res["devices"] == {"supervised": [ASSIGNED]}
