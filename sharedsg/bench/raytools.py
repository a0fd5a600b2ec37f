"""Helpers for the runtime tests and the benchmarks: tiny configs, an actor killed as a crash kills
it, and the registry's state once every group answers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import ray
from omegaconf import DictConfig

from sharedsg.config import load_config

TINY = [
    "model.slot_width=8", "model.encoder_hidden=8", "sg.hidden=8", "learner.batch_size=8",
    "data.format=sample", "data.obs_len=8", "data.pred_len=8", "data.window_stride=8",
    "experiment.eval_batches=1", "experiment.progress=false",
]


def tiny_config(run_dir: str | os.PathLike, *overrides: str, two_streams: bool = True) -> DictConfig:
    extra: List[str] = list(TINY) + [f"experiment.storage={run_dir}"]
    if two_streams:
        extra.append("streams.pedestrian.data_class=pedestrian")
    return load_config(None, extra + list(overrides))


def tiny_yaml(path: str | os.PathLike, run_dir: str | os.PathLike, name: str = "tiny",
              streams: str = "cyclist: {data_class: cyclist}\n  pedestrian: {data_class: pedestrian}",
              extra: str = "") -> Path:
    """A YAML config equal to :func:`tiny_config` (for CLI tests)."""
    text = f"""experiment: {{name: {name}, iterations: 6, eval_every: 3, eval_batches: 1, storage: {run_dir}, progress: false}}
model: {{slot_width: 8, encoder_hidden: 8}}
sg: {{hidden: 8}}
learner: {{batch_size: 8}}
data: {{format: sample, obs_len: 8, pred_len: 8, window_stride: 8}}
streams:
  {streams}
{extra}"""
    Path(path).write_text(text)
    return Path(path)


def kill_and_wait(actor: ray.actor.ActorHandle, timeout_s: float = 30.0) -> None:
    """Kill ``actor`` as a crash would (Ray restarts it) and return once its process is gone.

    ``ray.kill`` only asks the GCS to kill: a call sent right after it may still run in the old
    process. After this returns, every call goes to the restarted actor."""
    pid = ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
    ray.kill(actor, no_restart=False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise TimeoutError(f"actor process {pid} still alive {timeout_s:.0f} s after ray.kill")


def settled_state(get_state: Callable[[], Dict[str, Any]], timeout_s: float = 120.0) -> Dict[str, Any]:
    """The registry's state (``get_state()``) once every SG group answers.

    A group that started or restarted moments ago, on a loaded machine, can miss the registry's
    10 s state timeout and be reported as ``{"error": ...}`` (its counters and pid then missing).
    Raises ``TimeoutError`` naming the silent groups after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = get_state()
        silent = sorted(g for g, info in state["groups"].items() if "error" in info)
        if not silent:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"SG groups {silent} did not answer within {timeout_s:.0f} s")
        time.sleep(1.0)
