"""``EpisodeMethod``: what every few-shot baseline behind the job interface of
:mod:`sharedsg.experiments.omniglot` shares (MAML, the prototypical network, MANN).

A method trains one module, the attribute named by ``module_name``, with one optimiser,
``optimizer``. Its checkpoint is ``{module_name: the module's state dict, "optimizer": the
optimiser's}`` (``"net"`` for MAML, ``"encoder"`` for the prototypical network, ``"model"`` for
MANN), and a test episode's accuracy is that of the argmax of :meth:`query_logits`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Dict

import torch
from torch import nn

from sharedsg.data.episodes import Episode


class EpisodeMethod(ABC):
    """One trained module (``getattr(self, module_name)``) and its optimiser; subclasses give
    :meth:`query_logits` and ``meta_step``."""

    module_name: ClassVar[str]
    optimizer: torch.optim.Optimizer

    @abstractmethod
    def query_logits(self, ep: Episode) -> torch.Tensor:
        """Test-time logits (Q, N) of the episode's queries after its support set."""

    def test_episode(self, ep: Episode) -> float:
        """The fraction of the episode's queries whose largest logit is their class."""
        return float((self.query_logits(ep).argmax(-1) == ep.query_y).float().mean())

    def _module(self) -> nn.Module:
        return getattr(self, self.module_name)

    def state_dict(self) -> Dict[str, object]:
        return {self.module_name: {k: v.detach().clone() for k, v in self._module().state_dict().items()},
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self._module().load_state_dict(state[self.module_name])
        self.optimizer.load_state_dict(state["optimizer"])
