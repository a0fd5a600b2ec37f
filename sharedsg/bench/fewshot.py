"""Meta-training episodes per second of the few-shot methods (for ``sharedsg bench learner``).

Each method takes ``steps`` timed meta-updates (after one warm-up) with its own meta-batch
(``fewshot.meta_batches``) on episodes shaped like Omniglot's (28x28 images, N-way K-shot,
Q queries per class; pixel values do not change the cost). Methods: the NMN few-shot step,
proposed (fast path of Eq. 10 from SGs, plus the SG update of Eq. 11) and baseline; MAML
(Finn et al., ``maml_order``); the prototypical network (its ``protonet_train_ways``-way episodes).
"""

from __future__ import annotations

import re
import time
from typing import Callable, Dict, List, Tuple

import torch
from omegaconf import DictConfig

from sharedsg.data.episodes import Episode
from sharedsg.errors import UserError

METHODS = ("proposed", "baseline", "maml", "protonet")


def synthetic_episode(ways: int, shots: int, queries: int, generator: torch.Generator, size: int = 28) -> Episode:
    """An episode of random images with the sampler's shapes and label layout."""
    sy = torch.arange(ways).repeat_interleave(shots)[torch.randperm(ways * shots, generator=generator)]
    qy = torch.arange(ways).repeat_interleave(queries)[torch.randperm(ways * queries, generator=generator)]
    return Episode(torch.rand(len(sy), 1, size, size, generator=generator), sy,
                   torch.rand(len(qy), 1, size, size, generator=generator), qy,
                   torch.arange(ways), torch.zeros(ways, dtype=torch.long))


def fewshot_episodes_per_s(cfg: DictConfig, ways: int, shots: int, steps: int = 5,
                           methods: List[str] = list(METHODS)) -> Dict[str, Dict[str, float]]:
    """{method: {episodes_per_s, meta_batch, s_per_update}} for the ``ways``-way ``shots``-shot setting."""
    from sharedsg.experiments.omniglot import make_method

    fs = cfg.fewshot
    g = torch.Generator().manual_seed(0)
    out: Dict[str, Dict[str, float]] = {}
    for method in methods:
        impl = make_method(cfg, method, ways, seed=0)
        train_ways = int(getattr(impl, "train_ways", ways))
        mb = int(fs.meta_batches.get(method, fs.meta_batch))
        batch = [synthetic_episode(train_ways, shots, int(fs.queries), g, int(cfg.model.image_size)) for _ in range(mb)]
        impl.meta_step(batch)  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            impl.meta_step(batch)
        per_update = (time.perf_counter() - start) / steps
        out[method] = {"episodes_per_s": round(mb / per_update, 2), "meta_batch": mb, "train_ways": train_ways,
                       "s_per_update": round(per_update, 4)}
    return out


def parse_setting(setting: str) -> Tuple[int, int]:
    """``5w1s`` -> (5, 1); a clear error for anything else."""
    match = re.fullmatch(r"(\d+)w(\d+)s", setting)
    if match is None or int(match.group(1)) < 2 or int(match.group(2)) < 1:
        raise UserError(f"few-shot setting {setting!r} is not <ways>w<shots>s with ways >= 2 and shots >= 1; "
                        "write e.g. --fewshot-settings 5w1s,20w5s")
    return int(match.group(1)), int(match.group(2))


def proposed_step(cfg: DictConfig, setting: str) -> Callable[[], None]:
    """One meta-update of the proposed NMN few-shot learner (fast path of Eq. 10 and the SG update
    of Eq. 11) in ``setting`` (e.g. ``5w5s``), with ``cfg``'s ``model.impl``, its meta-batch and
    queries, on fixed random episodes: the step the bench times for reference and fast."""
    from sharedsg.experiments.omniglot import make_method

    ways, shots = parse_setting(setting)
    method = make_method(cfg, "proposed", ways, seed=0)
    g = torch.Generator().manual_seed(0)
    batch = [synthetic_episode(ways, shots, int(cfg.fewshot.queries), g, int(cfg.model.image_size))
             for _ in range(int(cfg.fewshot.meta_batch))]

    def step() -> None:
        method.meta_step(batch)
    return step
