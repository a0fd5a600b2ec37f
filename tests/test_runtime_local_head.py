"""The local Ray of attachable runs (sharedsg/runtime/cluster/local_head.py), through the README's attach
example, verbatim, on one machine without a cluster (subprocesses, no fixtures): the run starts
a local Ray that outlives it, the stream attaches and trains, its events land in the run's
directory, ``status`` lists it, ``stop`` ends the experiment and the local Ray, and no Ray
process is left."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # a local Ray and four commands in subprocesses


def readme_block(lang: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Attach, status, stop"):]
    return re.search(rf"```{lang}\n(.*?)```", section, flags=re.S).group(1)


def test_readme_attach_example_verbatim(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    commands = [line.split("#")[0].strip() for line in readme_block("bash").splitlines() if line.strip()]
    assert [c.split()[:2] for c in commands] == [["sharedsg", "run"], ["sharedsg", "attach"], ["sharedsg", "status"],
                                                 ["sharedsg", "stop"]]
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "local_small.yaml", tmp_path / "configs")
    (tmp_path / "my_stream.yaml").write_text(readme_block("yaml"))
    env = dict(os.environ, RAY_ADDRESS="", CUDA_VISIBLE_DEVICES="", SHAREDSG_CACHE=str(tmp_path / "cache"),
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               PYTHONPATH=f"{REPO}:{os.environ.get('PYTHONPATH', '')}")

    def sh(command: str):
        return subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=400)

    state_file = tmp_path / "cache" / "local-ray.json"
    pid = None
    try:
        run = sh(commands[0])
        assert run.returncode == 0, run.stderr[-3000:]
        assert "started a local Ray" in run.stderr
        state = json.loads(state_file.read_text())
        pid, port = int(state["pid"]), state["address"].rsplit(":", 1)[1]
        assert psutil.pid_exists(pid)  # outlives the run

        attach = sh(commands[1])
        assert attach.returncode == 0, attach.stderr[-3000:]
        result = json.loads(attach.stdout)
        assert result["streams"]["cyclist2"]["steps"] == 20 and result["streams"]["cyclist2"]["group"] == "shared"
        run_dir = Path(result["run_path"])
        assert run_dir.parent == tmp_path / "runs" / "local_small"
        acc = EventAccumulator(str(run_dir / "cyclist2")).Reload()
        assert len(acc.Scalars("loss/train")) == 20 and "loss/eval" in acc.Tags()["scalars"]

        status = sh(commands[2])
        assert status.returncode == 0, status.stderr[-3000:]
        assert "local_small: run" in status.stdout and "stream cyclist2:" in status.stdout, status.stdout

        stop = sh(commands[3])
        assert stop.returncode == 0, stop.stderr[-3000:]
        assert json.loads(stop.stdout)["local_ray_stopped"] == state["address"]
        time.sleep(1)
        assert not psutil.pid_exists(pid) and not state_file.exists()
        left = [p for p in psutil.process_iter(["cmdline"]) if any(port in a or str(tmp_path) in a
                                                                  for a in (p.info["cmdline"] or []))]
        assert left == [], [p.info["cmdline"][:3] for p in left]
    finally:  # a failed step must not leave the local Ray running
        if state_file.exists():
            pid = int(json.loads(state_file.read_text())["pid"])
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, 15)
