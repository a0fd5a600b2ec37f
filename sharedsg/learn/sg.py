"""SGLearner: the SG predictors of one sharing group and their training (Eq. 11)."""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from omegaconf import DictConfig

from sharedsg.errors import DimensionMismatch
from sharedsg.learn.adam import Adam
from sharedsg.learn.tasks import make_task
from sharedsg.learn.types import SGState, SGTargets
from sharedsg.model.synthetic import SGModules, build_sg_modules, fusable


def _concatenate(batches: List[SGTargets]) -> List[SGTargets]:
    """Target sets grouped by shape (streams may differ in sequence length), each group one batch."""
    by_shape: Dict[tuple, List[SGTargets]] = {}
    for b in batches:
        key = (tuple(b.y.shape[1:]),) + tuple(tuple(v.shape[1:]) for v in b.h.values())
        by_shape.setdefault(key, []).append(b)
    return [group[0] if len(group) == 1 else SGTargets(
        {c: torch.cat([b.h[c] for b in group]) for c in group[0].h}, torch.cat([b.y for b in group]),
        {c: torch.cat([b.g[c] for b in group]) for c in group[0].g}) for group in by_shape.values()]


class SGLearner:
    """Trains SG^IC, SG^OC, SG^WC on targets from any number of streams.

    The state is versioned: ``version`` increases by one with every :meth:`update`,
    so a stream can tell whether its copy is stale.

    ``dims`` (``{name: width, ..., "target": d}``, the form :attr:`dims` reports): predictors for
    these activations instead of an NMN's three controllers (the public API, :mod:`sharedsg.api`).
    """

    def __init__(self, model: DictConfig, sg: DictConfig, seed: int = 0,
                 device: str | torch.device = "cpu", dims: Optional[Mapping[str, int]] = None) -> None:
        torch.manual_seed(seed + 7919)
        self.device = torch.device(device)
        if dims is None:
            modules = build_sg_modules(model, sg, make_task(model).target_dim)
        else:
            modules = SGModules({k: int(v) for k, v in dims.items() if k != "target"}, int(dims["target"]),
                                sg.hidden, sg.kind, scaling=sg.target_scaling, momentum=sg.scale_momentum)
        self.modules = modules.to(self.device)
        self.names = tuple(self.modules.controller_dims)
        fast = model.impl == "fast"
        # model.impl=fast: Adam's fused form (one kernel for all parameters, the same arithmetic) and, for
        # LSTM predictors on a CPU, the gradients without autograd (SGPredictor.loss_gradients)
        self.optimizer = Adam(self.modules.parameters(), lr=sg.lr, form="fused" if fast else "single")
        self.fused = fast and fusable(self.modules, self.device)
        self.updates_per_push = int(sg.updates_per_push)
        self.version = 0

    @property
    def dims(self) -> Dict[str, int]:
        return {**self.modules.controller_dims, "target": self.modules.target_dim}

    def check_dims(self, dims: Dict[str, int]) -> None:
        """Raise :class:`DimensionMismatch` naming every dimension that differs from the group's."""
        wrong = [f"{k}={dims.get(k)} (group has {v})" for k, v in self.dims.items() if dims.get(k) != v]
        wrong += [f"{k}={v} (group has none)" for k, v in dims.items() if k not in self.dims]
        if wrong:
            raise DimensionMismatch("stream dimensions do not fit the SG group: " + ", ".join(wrong))

    @staticmethod
    def targets(parts: Tuple[Any, ...]) -> SGTargets:
        """A push's wire parts (:meth:`SGTargets.parts`) as the float32 targets :meth:`update` takes."""
        return SGTargets.from_parts(*parts).float32()

    def update(self, batches: Iterable[SGTargets]) -> Dict[str, float]:
        """Eq. 11 on the given target sets (one push each, from any streams): one optimiser step
        on their sample-weighted mean loss; version += 1. With ``sg.target_scaling=rms`` each
        predictor's running RMS takes these targets first and the loss (returned as
        ``sg/<c>/loss``) is on g / scale: the MSE relative to the targets' mean square.

        Sets of the same shape are concatenated into one forward pass (the server's group
        commit). On a CPU that costs about what k separate passes do and saves the per-update
        costs (optimiser step, a version and a weight pull per push); on a GPU the larger batch
        costs about what one push's does.
        """
        chunks = _concatenate([b.to(self.device) for b in batches])
        total_n = sum(c.batch_size for c in chunks)
        for c in self.names:  # sg.target_scaling=rms: the running RMS moves first, then Eq. 11 on g / scale
            self.modules.predictors[c].observe([chunk.g[c] for chunk in chunks])
        for _ in range(self.updates_per_push):
            per_c = self._step(chunks, total_n)
        self.version += 1
        return dict(zip([f"sg/{c}/loss" for c in self.names], per_c.tolist()))  # one host transfer

    def _step(self, chunks: List[SGTargets], total_n: int) -> torch.Tensor:
        """One optimiser step by autograd through the three predictors; their losses (3,), on the device."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.fused:
            return self._step_fused(chunks, total_n)
        per_c = {c: torch.zeros((), device=self.device) for c in self.names}
        for chunk in chunks:
            weight = chunk.batch_size / total_n
            for c in self.names:
                per_c[c] = per_c[c] + weight * self.modules.predictors[c].fit_loss(chunk.h[c], chunk.y, chunk.g[c])
        loss = torch.stack(list(per_c.values()))
        loss.sum().backward()
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def _step_fused(self, chunks: List[SGTargets], total_n: int) -> torch.Tensor:
        """:meth:`_step` with each predictor's loss and gradients from :meth:`SGPredictor.loss_gradients`."""
        losses = []
        for c in self.names:
            pred = self.modules.predictors[c]
            params, loss = list(pred.parameters()), None
            for chunk in chunks:
                part, grads = pred.loss_gradients(chunk.h[c], chunk.y, chunk.g[c], chunk.batch_size / total_n)
                if loss is None:
                    loss = part
                    for p, grad in zip(params, grads):
                        p.grad = grad
                else:
                    loss = loss + part
                    for p, grad in zip(params, grads):
                        p.grad.add_(grad)
            losses.append(loss)
        self.optimizer.step()
        return torch.stack(losses)

    @torch.no_grad()
    def predict(self, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Synthetic gradients for the ``rpc`` transport (CPU tensors in and out)."""
        out = self.modules({c: v.to(self.device) for c, v in h.items()}, y.to(self.device))
        return dict(zip(self.names, torch.stack([out[c] for c in self.names]).cpu().unbind(0)))  # one transfer

    def state(self, on_device: bool = False) -> SGState:
        """A copy of the weights at this version: CPU tensors (the wire's), or on the group's device
        (``on_device``: a stream in this process loads them without a round trip through the host)."""
        return SGState(self.version, {k: v.detach().clone() if on_device else v.detach().cpu().clone()
                                      for k, v in self.modules.state_dict().items()})

    def state_dict(self) -> Dict[str, object]:
        return {"weights": self.state().weights, "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "version": self.version}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.modules.load_state_dict(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.version = int(state["version"])
