"""The task interface: loss, metric and how the ground truth is encoded for the SG input."""

from __future__ import annotations

from typing import Protocol

import torch
from omegaconf import DictConfig
from torch.nn import functional as F


class Task(Protocol):
    metric_name: str
    target_dim: int

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss over the batch (per-sample losses averaged)."""

    def metric(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch's metric as a 0-d tensor on the device (fetched with the step's other metrics)."""

    def encode_target(self, y: torch.Tensor) -> torch.Tensor:
        """y -> (B, T, target_dim) float, the SG's conditioning input."""


class RegressionTask:
    """Trajectories (Sec. 4.2): MSE loss; metric ADE, the mean displacement per frame (scaled units)."""

    metric_name = "ade"

    def __init__(self, output_dim: int) -> None:
        self.target_dim = output_dim

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(y_hat, y)

    def metric(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(y_hat - y, dim=-1).mean()

    def encode_target(self, y: torch.Tensor) -> torch.Tensor:
        return y.float()


class ClassificationTask:
    """Images (Sec. 4.1): categorical cross entropy on softmax outputs; metric accuracy; one-hot targets."""

    metric_name = "accuracy"

    def __init__(self, num_classes: int) -> None:
        self.target_dim = num_classes

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(y_hat.reshape(-1, y_hat.shape[-1]), y.reshape(-1))

    def metric(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (y_hat.argmax(dim=-1) == y).float().mean()

    def encode_target(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, self.target_dim).float()


def make_task(model: DictConfig) -> Task:
    if model.decoder == "classification":
        return ClassificationTask(model.output_dim)
    return RegressionTask(model.output_dim)
