"""N-way K-shot episodes for few-shot classification (paper Sec. 4.1, protocol of Vinyals et al.).

An episode picks N classes of a pool, then K support and Q query images of each
class, all distinct drawings (no image is in both support and query). Labels are
remapped to 0..N-1 per episode in a random order, and the support and query sets
are each shuffled, so neither the label nor the position gives the class away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from sharedsg.data.errors import DataError


class ClassPool(Protocol):
    """What the sampler needs from a dataset: classes with equally many samples each."""

    num_classes: int
    samples_per_class: int

    def images(self, classes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """float32 (n, m, H, W): sample ``samples[i, j]`` of class ``classes[i]``."""

    def char_ids(self, classes: np.ndarray) -> np.ndarray:
        """Dataset-level identity of each class (Omniglot: global character id)."""

    def rotations(self, classes: np.ndarray) -> np.ndarray:
        """Rotation (multiples of 90 degrees) applied to each class."""


@dataclass
class Episode:
    """``support_x`` (N*K, 1, H, W), ``support_y`` (N*K,), ``query_x`` (N*Q, 1, H, W), ``query_y`` (N*Q,).

    Labels are int64 in 0..N-1. ``char_ids[label]`` and ``rotations[label]`` say
    which character and rotation each episode label stands for.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    char_ids: torch.Tensor
    rotations: torch.Tensor

    def to(self, device: str | torch.device) -> "Episode":
        """Images and labels on ``device``; ``char_ids`` and ``rotations`` (bookkeeping) stay where they are."""
        return Episode(self.support_x.to(device), self.support_y.to(device), self.query_x.to(device),
                       self.query_y.to(device), self.char_ids, self.rotations)


class EpisodeSampler:
    """Seedable sampler of ``ways``-way ``shots``-shot episodes with ``queries`` queries per class."""

    def __init__(self, dataset: ClassPool, ways: int, shots: int, queries: int, seed: int) -> None:
        if ways < 1 or shots < 1 or queries < 0:
            raise DataError(f"episodes need ways >= 1, shots >= 1, queries >= 0; got {ways}, {shots}, {queries}")
        if ways > dataset.num_classes:
            raise DataError(f"{ways}-way episodes need {ways} classes but the pool has {dataset.num_classes}")
        if shots + queries > dataset.samples_per_class:
            raise DataError(
                f"shots + queries = {shots + queries} exceeds the {dataset.samples_per_class} images per class; "
                "lower data shots or queries"
            )
        self.dataset = dataset
        self.ways, self.shots, self.queries = ways, shots, queries
        self.rng = np.random.default_rng(seed)

    def sample(self) -> Episode:
        """One episode; the sequence of episodes depends only on the seed."""
        n, k, q = self.ways, self.shots, self.queries
        classes = self.rng.choice(self.dataset.num_classes, size=n, replace=False)
        order = np.argsort(self.rng.random((n, self.dataset.samples_per_class)), axis=1)[:, : k + q]
        images = self.dataset.images(classes, order)  # (n, k + q, H, W)
        labels = np.repeat(np.arange(n), k + q).reshape(n, k + q)
        support = self.rng.permutation(n * k)
        query = self.rng.permutation(n * q)
        h, w = images.shape[-2:]
        support_x = images[:, :k].reshape(n * k, 1, h, w)[support]
        query_x = images[:, k:].reshape(n * q, 1, h, w)[query]
        return Episode(
            support_x=torch.from_numpy(np.ascontiguousarray(support_x)),
            support_y=torch.from_numpy(labels[:, :k].reshape(-1)[support].astype(np.int64)),
            query_x=torch.from_numpy(np.ascontiguousarray(query_x)),
            query_y=torch.from_numpy(labels[:, k:].reshape(-1)[query].astype(np.int64)),
            char_ids=torch.from_numpy(self.dataset.char_ids(classes).astype(np.int64)),
            rotations=torch.from_numpy(self.dataset.rotations(classes).astype(np.int64)),
        )
