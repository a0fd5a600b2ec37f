"""TensorBoard logging for a run: ``<run_dir>/<experiment>/<run>/<stream>/`` on the driver's machine."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, Mapping

from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter


def new_run_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def run_path(cfg: DictConfig) -> Path:
    """The run directory; an empty ``experiment.run_name`` is replaced by a timestamp (once)."""
    if not cfg.experiment.run_name:
        cfg.experiment.run_name = new_run_name()
    return Path(cfg.experiment.run_dir) / cfg.experiment.name / cfg.experiment.run_name


class RunLog:
    """One SummaryWriter per stream (plus ``server`` and any other writer name) under the run dir."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._writers: Dict[str, SummaryWriter] = {}

    def writer(self, name: str) -> SummaryWriter:
        if name not in self._writers:
            self._writers[name] = SummaryWriter(log_dir=str(self.path / name), flush_secs=5)
        return self._writers[name]

    def scalars(self, name: str, step: int, values: Mapping[str, float]) -> None:
        w = self.writer(name)
        for tag, v in values.items():
            w.add_scalar(tag, float(v), step)

    def config(self, name: str, cfg: DictConfig, metrics: Mapping[str, float] | None = None) -> None:
        """The config as text and as hparams (flattened scalars)."""
        w = self.writer(name)
        w.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```", 0)
        flat = {}
        for k, v in _flatten(OmegaConf.to_container(cfg, resolve=True)).items():
            if isinstance(v, (int, float, str, bool)):
                flat[k] = v
        w.add_hparams(flat, dict(metrics or {"hparam/placeholder": 0.0}), run_name=".")

    def figure(self, name: str, tag: str, fig, step: int = 0) -> None:
        self.writer(name).add_figure(tag, fig, step)

    def flush(self) -> None:
        for w in self._writers.values():
            w.flush()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


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
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
