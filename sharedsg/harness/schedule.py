"""Which streams train at which iteration."""

from __future__ import annotations

from typing import List

from omegaconf import DictConfig


def is_scheduled(schedule: DictConfig, iteration: int) -> bool:
    """A stream trains at iterations start, start + every, start + 2 * every, ..."""
    return iteration >= schedule.start and (iteration - schedule.start) % schedule.every == 0


def scheduled(cfg: DictConfig, iteration: int) -> List[str]:
    return [name for name, s in cfg.streams.items() if is_scheduled(s.schedule, iteration)]
