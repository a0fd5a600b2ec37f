"""``ray job submit`` end to end on a real ``ray start --head`` on this machine, token auth on.

The head is started as the cluster configs start it (``RAY_AUTH_MODE=token``, the token in
``RAY_AUTH_TOKEN``; the same two variables in every process: ``ray start``, ``ray job submit``),
with ``--block`` so that ending the process group this test started stops exactly that head
(``ray stop`` would stop every Ray of this machine, others' too). Its HOME is a fresh folder:
the job leaves ``experiment.storage`` at its default (``runs``), which a job's working
directory (deleted with Ray's session) must not hold, so it resolves under HOME.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a Ray head and a job in subprocesses

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


def test_ray_job_submit_writes_into_storage_not_into_ray_temp(tmp_path):
    temp = Path(tempfile.mkdtemp(prefix="rj", dir="/tmp"))  # short: Ray's socket paths have a length limit
    home = tmp_path / "home"
    home.mkdir()
    gcs, dash = free_port(), free_port()
    # every port of its own: another Ray on this machine may hold the defaults (the job agent's 52365)
    ports = [f"--{name}-port={free_port()}" for name in ("dashboard-agent-listen", "dashboard-agent-grpc",
                                                           "runtime-env-agent", "metrics-export", "ray-client-server")]
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), HOME=str(home),
               PATH=f"{BIN}:{os.environ.get('PATH', '')}", RAY_ADDRESS="", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)  # the job imports sharedsg from its working directory
    try:
        head = subprocess.Popen(
            [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", f"--dashboard-port={dash}",
             "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=3", "--num-gpus=0",
             f"--temp-dir={temp}", "--object-store-memory=100000000", "--disable-usage-stats", *ports],
            env=env, stdout=(tmp_path / "head.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(dash, 120)
            runtime_env = '{"env_vars": {"SHAREDSG_DATA": "%s"}}' % os.environ.get("SHAREDSG_DATA", "")
            command = [str(BIN / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{dash}",
                       "--working-dir", str(REPO), "--runtime-env-json", runtime_env, "--",
                       "sharedsg", "run", "configs/local_small.yaml", "experiment.iterations=6", "experiment.eval_every=3",
                       "experiment.run_name=job", "experiment.progress=false", "resources.stream_checkpoint_every=2"]
            deadline = time.monotonic() + 180
            while True:  # the dashboard answers before its job agent is up; then nothing was submitted
                submit = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
                out = submit.stdout + submit.stderr
                if "No available agent to submit job" not in out or time.monotonic() > deadline:
                    break
                time.sleep(3)
            assert submit.returncode == 0, out[-3000:] + (tmp_path / "head.log").read_text()[-2000:]
            assert "succeeded" in out, out[-4000:]
        finally:
            os.killpg(head.pid, signal.SIGTERM)  # --block: the head stops its own processes
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait(timeout=30)
        check_outputs(home, temp)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def check_outputs(home: Path, temp: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = home / "runs" / "local_small" / "job"  # the default storage, resolved under HOME
    assert (run / "results.json").is_file(), sorted(str(p) for p in home.rglob("*"))[:50]
    acc = EventAccumulator(str(run / "cyclist")).Reload()
    assert len(acc.Scalars("loss/train")) == 6
    assert (run / "checkpoints" / "stream-cyclist.pt").is_file() and (run / "checkpoints" / "server.json").is_file()
    leaked = [p for p in temp.rglob("*") if p.name.startswith("events.out.tfevents") or p.suffix == ".pt"
              or p.name == "results.json"]
    assert leaked == []  # nothing under Ray's temporary folder (the job's working directory is in there)
