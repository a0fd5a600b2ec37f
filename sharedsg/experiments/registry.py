"""Experiment kinds (``experiment.kind``) -> the function that runs them on a backend."""

from __future__ import annotations

from typing import Callable, Dict

from omegaconf import DictConfig

from sharedsg.errors import UserError
from sharedsg.experiments.knowledge_sharing import format_table as knowledge_sharing_table
from sharedsg.experiments.knowledge_sharing import run_knowledge_sharing
from sharedsg.harness.launcher import Launcher
from sharedsg.experiments.metatest import format_table as metatest_table
from sharedsg.experiments.metatest import run_metatest
from sharedsg.harness.runlog import RunLog
from sharedsg.experiments.train import run_training

Runner = Callable[[DictConfig, Launcher, RunLog], Dict[str, object]]
"""(config, launcher, run log) -> results; the runner makes and closes its backends."""


def _fewshot(cfg: DictConfig, backends: Launcher, log: RunLog) -> Dict[str, object]:
    from sharedsg.experiments.omniglot import run_fewshot  # Omniglot Table 1 (Sec. 4.1)

    return run_fewshot(cfg, backends, log)


def _mnist_rare(cfg: DictConfig, backends: Launcher, log: RunLog) -> Dict[str, object]:
    from sharedsg.experiments.mnist_rare import run_mnist_rare  # MNIST rare classes (Sec. 5.1)

    return run_mnist_rare(cfg, backends, log)


EXPERIMENTS: Dict[str, Runner] = {
    "train": run_training,
    "knowledge_sharing": run_knowledge_sharing,
    "fewshot": _fewshot,  # its jobs in this process; `sharedsg sweep` runs them as Ray actors
    "mnist_rare": _mnist_rare,
    "metatest": run_metatest,
}


# kinds whose jobs `sharedsg run` (without --local) hands to the resumable Ray sweep
SWEPT_KINDS = ("fewshot", "mnist_rare")

# kind -> results -> the table printed at the end of ``sharedsg run`` (kinds without one print a summary)
TABLES: Dict[str, Callable[[Dict[str, object]], str]] = {
    "knowledge_sharing": knowledge_sharing_table,
    "metatest": metatest_table,
}


def get_runner(kind: str) -> Runner:
    if kind not in EXPERIMENTS:
        raise UserError(f"experiment.kind: '{kind}' is not one of {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[kind]
