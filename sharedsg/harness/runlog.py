"""TensorBoard logging for a run: ``<experiment.storage>/<experiment>/<run>/<stream>/``, written by the driver.

With a URI storage (:mod:`sharedsg.storage`) the driver writes into a local staging folder and
uploads it on every :meth:`RunLog.flush` and at :meth:`RunLog.close`. The run folder is created
with the first thing written into it, so a run that stops before (a placement that is not
granted) leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, Mapping

from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from sharedsg import storage
from sharedsg.config import cache_dir


def new_run_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def run_path(cfg: DictConfig) -> str:
    """The run's storage location (a path or a URI); an empty ``experiment.run_name`` is replaced
    by a timestamp (once)."""
    if not cfg.experiment.run_name:
        cfg.experiment.run_name = new_run_name()
    return storage.join(cfg.experiment.storage or cfg.experiment.run_dir, cfg.experiment.name,
                        cfg.experiment.run_name)


class RunLog:
    """One SummaryWriter per stream (plus ``server`` and any other writer name) under the run dir.

    ``location`` is where the run's files belong (``run_path``); ``path`` the local folder the
    driver writes (the same, or the staging folder of a URI). Fails with one line when this
    machine cannot write there."""

    def __init__(self, location: str | Path) -> None:
        self.location = storage.location(location)
        storage.check_writable(self.location)
        if storage.is_uri(self.location):
            self.path = storage.staging_dir(self.location, cache_dir())
        else:
            self.path = Path(self.location)
        self._writers: Dict[str, SummaryWriter] = {}

    def child(self, name: str) -> "RunLog":
        """The run log of a sub-folder (e.g. one seed's)."""
        return RunLog(storage.join(self.location, name))

    def writer(self, name: str) -> SummaryWriter:
        if name not in self._writers:
            self.path.mkdir(parents=True, exist_ok=True)
            self._writers[name] = SummaryWriter(log_dir=str(self.path / name), flush_secs=5)
        return self._writers[name]

    def scalars(self, name: str, step: int, values: Mapping[str, float]) -> None:
        w = self.writer(name)
        for tag, v in values.items():
            w.add_scalar(tag, float(v), step)

    def config(self, name: str, cfg: DictConfig, metrics: Mapping[str, float] | None = None) -> None:
        """The config as text and as hparams (flattened scalars), with ``metrics`` as the hparams'
        metrics when given (none otherwise: TensorBoard lists the hparams without a chart)."""
        w = self.writer(name)
        w.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```", 0)
        flat = {}
        for k, v in _flatten(OmegaConf.to_container(cfg, resolve=True)).items():
            if isinstance(v, (int, float, str, bool)):
                flat[k] = v
        w.add_hparams(flat, dict(metrics or {}), run_name=".")

    def figure(self, name: str, tag: str, fig, step: int = 0) -> None:
        self.writer(name).add_figure(tag, fig, step)

    def flush(self) -> None:
        for w in self._writers.values():
            w.flush()
        self._upload()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        self._upload()

    def _upload(self) -> None:
        if storage.is_uri(self.location) and self.path.is_dir():
            storage.upload_dir(self.path, self.location)


def _flatten(d: Mapping, prefix: str = "") -> Dict[str, object]:
    out: Dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def write_json_atomic(path: Path, obj: object) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
