"""The MANN baseline (Santoro et al. 2016) behind the job interface of :mod:`sharedsg.experiments.omniglot`.

Their protocol: the image's pixels (here 28x28, flattened) with the previous item's one-hot
label; one episode is one sequence, B episodes a batch; Adam (``fewshot.meta_lr``) on the
query cross-entropy (the queries are the episode's second instances of each class).
"""

from __future__ import annotations

from typing import Dict, List

import torch
from omegaconf import DictConfig
from torch.nn import functional as F

from sharedsg.data.episodes import Episode
from sharedsg.learn.fewshot import stack_episodes
from sharedsg.learn.method import EpisodeMethod
from sharedsg.model.mann import Mann


class MannMethod(EpisodeMethod):
    """Santoro et al.'s memory-augmented network: one episode a sequence, the queries' logits at its end."""

    module_name = "model"

    def __init__(self, cfg: DictConfig, ways: int, seed: int) -> None:
        torch.manual_seed(seed)
        fs = cfg.fewshot
        size = int(cfg.model.image_size)
        self.ways = ways
        self.model = Mann(size * size, ways, int(fs.mann_controller), int(fs.mann_slots), int(fs.mann_width),
                          int(fs.mann_reads)).to(cfg.learner.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=float(fs.meta_lr))

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        b, s_len = batch["sy"].shape
        return self.model(batch["sx"].reshape(b, s_len, -1), batch["sy"], batch["qx"].reshape(b, batch["qx"].shape[1], -1))

    def meta_step(self, episodes: List[Episode]) -> Dict[str, float]:
        batch = stack_episodes(episodes)
        logits = self.logits(batch)
        loss = F.cross_entropy(logits.reshape(-1, self.ways), batch["qy"].reshape(-1))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss/query_train": float(loss.detach()),
                "accuracy/query_train": float((logits.argmax(-1) == batch["qy"]).float().mean())}

    def query_logits(self, ep: Episode) -> torch.Tensor:
        with torch.no_grad():
            return self.logits(stack_episodes([ep]))[0]
