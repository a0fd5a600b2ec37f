"""Meta-training episodes per second of the few-shot methods (for ``sharedsg bench learner``).

Each method takes ``steps`` timed meta-updates (after one warm-up) with its own meta-batch
(``fewshot.meta_batches``) on episodes shaped like Omniglot's (28x28 images, N-way K-shot,
Q queries per class; pixel values do not change the cost). Methods: the NMN few-shot step,
proposed (fast path of Eq. 10 from SGs, plus the SG update of Eq. 11) and baseline; MAML
(Finn et al., ``maml_order``); the prototypical network (its ``protonet_train_ways``-way episodes).
"""

from __future__ import annotations

import time
from typing import Dict, List

import torch
from omegaconf import DictConfig

from sharedsg.data.episodes import Episode

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
