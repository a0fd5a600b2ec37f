"""Experiment kinds (``experiment.kind``) -> the function that runs them on a backend."""

from __future__ import annotations

from typing import Callable, Dict

from omegaconf import DictConfig

from sharedsg.errors import UserError
from sharedsg.experiments.backend import Backend
from sharedsg.experiments.runlog import RunLog
from sharedsg.experiments.train import run_training

Runner = Callable[[DictConfig, Backend, RunLog], Dict[str, object]]

EXPERIMENTS: Dict[str, Runner] = {"train": run_training}


def get_runner(kind: str) -> Runner:
    if kind not in EXPERIMENTS:
        raise UserError(f"experiment.kind: '{kind}' is not one of {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[kind]
