"""Synthetic-gradient predictors SG^IC, SG^OC, SG^WC (Eq. 9) and their loss (Eq. 11).

Each predictor maps a controller output h_t and the ground truth y_t (cDNI-style
conditioning: the input is their concatenation, Sec. 4.1) to an estimate of
dL/dh_t. The last layer is zero-initialised, so the first synthetic gradient is
zero and an untrained SG cannot push a controller anywhere (koz4k/dni-pytorch).

Target scaling (``sg.target_scaling=rms``): the true gradients dL/dh are small (RMS 1e-5 to 1e-4
on the trajectory task) and Adam's step does not depend on their scale, so a predictor fitted to
them raw overshoots by orders of magnitude (docs/results/sg_fit.md). Each predictor keeps a running
RMS of its targets, ``scale`` (a buffer: it travels in the state_dict with the weights, to every
stream's copy and every checkpoint); Eq. 11 is fitted on g / scale and the prediction is
multiplied back by scale at use, SG(h, y) = scale * f(h, y).

``model.impl=fast`` trains an LSTM predictor on a CPU with :meth:`SGPredictor.loss_gradients`:
Eq. 11's loss and its parameter gradients with no autograd graph, oneDNN's LSTM forward and
backward kernels (the ones ``nn.LSTM`` and its autograd node run on a CPU) called directly,
the head and the loss differentiated by hand.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from omegaconf import DictConfig
from torch import nn

from sharedsg.model.controllers import CONTROLLERS


class SGPredictor(nn.Module):
    """One controller's gradient predictor: (h, y) (B, T, k + d) -> dL/dh estimate (B, T, k).

    ``kind='lstm'`` (the paper) runs an LSTM over the time steps of the batch, from a
    zero state every batch; ``kind='mlp'`` predicts every step independently.
    ``scaling='rms'``: the network f fits g / scale and SG = scale * f (:meth:`observe` moves
    ``scale``, the running RMS of the targets: their mean over the first 1 / ``momentum`` updates,
    then an exponential average with weight ``momentum``); ``'none'``: scale stays 1.
    """

    def __init__(self, out_dim: int, target_dim: int, hidden: int, kind: str, *, scaling: str,
                 momentum: float) -> None:
        super().__init__()
        self.kind, self.scaling, self.momentum = kind, scaling, float(momentum)
        self.register_buffer("target_ms", torch.ones(()))  # running mean of g^2; scale = its square root
        self.register_buffer("observed", torch.zeros(()))  # updates that moved target_ms
        in_dim = out_dim + target_dim
        if kind == "lstm":
            self.body = nn.LSTM(in_dim, hidden, batch_first=True)
        else:
            self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, out_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def scale(self) -> torch.Tensor:
        """The targets' running RMS (0-d), 1 with ``scaling='none'`` or before any target was seen."""
        return self.target_ms.sqrt()

    @torch.no_grad()
    def observe(self, g: List[torch.Tensor]) -> None:
        """Move the running mean square of the targets by one update's targets ``g`` (all of its
        target sets, every element weighted equally); nothing with ``scaling='none'``."""
        if self.scaling == "none":
            return
        ms = sum(v.pow(2).sum() for v in g) / sum(v.numel() for v in g)
        weight = torch.clamp(1.0 / (self.observed + 1.0), min=self.momentum)
        self.target_ms.lerp_(ms.clamp_min(torch.finfo(ms.dtype).tiny), weight)
        self.observed.add_(1.0)

    def normalised(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """f(h, y): the prediction in units of ``scale`` (what Eq. 11 fits to g / scale)."""
        inp = torch.cat([h, y], dim=-1)
        feats = self.body(inp)[0] if self.kind == "lstm" else self.body(inp)
        return self.head(feats)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq. 9: dL/dh_t ~ SG(h_t, y_t) = scale * f(h_t, y_t)."""
        return self.normalised(h, y) * self.scale

    def fit_loss(self, h: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Eq. 11 on the scaled targets: ||f(h, y) - g / scale||^2 (mean), i.e. ||SG(h, y) - g||^2 / scale^2."""
        return sg_loss(self.normalised(h, y), g / self.scale)

    def loss_gradients(self, h: torch.Tensor, y: torch.Tensor, g: torch.Tensor,
                       weight: float) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """:meth:`fit_loss` times ``weight``, weight * ||f(h, y) - g / scale||^2 (mean), and its gradient
        for every parameter (``self.parameters()`` order), for ``kind='lstm'`` on a CPU (:func:`fusable`).

        The LSTM runs time-major from a zero state through ``aten::mkldnn_rnn_layer`` and back
        through ``aten::mkldnn_rnn_layer_backward`` (the gradient of the predictor's output
        arriving as ``grad_output``); the head y = W f + b and the loss by hand:
        dL/dy = weight * 2 (y - g) / n, dL/dW = dL/dy^T f, dL/db = sum dL/dy, dL/df = dL/dy W.
        """
        body, head = self.body, self.head
        b, t_len, d = y.shape
        k, hid = h.shape[2], body.hidden_size
        x = torch.empty(t_len, b, k + d, dtype=h.dtype, device=h.device)
        x[:, :, :k].copy_(h.transpose(0, 1))
        x[:, :, k:].copy_(y.transpose(0, 1))
        w = [v.detach() for v in (body.weight_ih_l0, body.weight_hh_l0, body.bias_ih_l0, body.bias_hh_l0)]
        zero = torch.zeros(b, hid, dtype=h.dtype, device=h.device)
        with torch.enable_grad():  # the kernel returns its workspace (needed by the backward) only then
            out, h_last, c_last, workspace = RNN_LAYER(
                x, *w, zero, zero, False, [], LSTM_MODE, hid, 1, True, False, False, True)
        feats = out.view(t_len * b, hid)
        w_head = head.weight.detach()
        diff = torch.addmm(head.bias.detach(), feats, w_head.t()).view(t_len, b, k) - g.transpose(0, 1) / self.scale
        loss = diff.pow(2).mean() * weight
        d_out = diff.view(t_len * b, k).mul_(2.0 * weight / diff.numel())
        d_feats = (d_out @ w_head).view(t_len, b, hid)
        lstm = RNN_LAYER_BACKWARD(
            x, *w, zero, zero, out, h_last, c_last, d_feats, None, None, False, LSTM_MODE, hid, 1, True, True,
            False, [], False, workspace)
        return loss, [lstm[1], lstm[2], lstm[3], lstm[4], d_out.t() @ feats, d_out.sum(0)]


class SGModules(nn.Module):
    """The predictors of one sharing group, one per entry of ``controller_dims``: the paper's
    controller names for an NMN (:func:`build_sg_modules`), any activation names for the public API."""

    def __init__(self, controller_dims: Dict[str, int], target_dim: int, hidden: int, kind: str, *,
                 scaling: str, momentum: float) -> None:
        super().__init__()
        self.controller_dims = dict(controller_dims)
        self.target_dim = target_dim
        self.predictors = nn.ModuleDict(
            {c: SGPredictor(width, target_dim, hidden, kind, scaling=scaling, momentum=momentum)
             for c, width in self.controller_dims.items()}
        )

    def forward(self, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {c: self.predictors[c](h[c], y) for c in self.controller_dims}


LSTM_MODE = 2
"""oneDNN's (and cuDNN's) code for an LSTM layer in ``aten::mkldnn_rnn_layer``."""
# The ops' overloads, not their packets: a packet (``torch.ops.aten.mkldnn_rnn_layer``) resolves
# the overload against the schema at every call (1.48 against 1.13 ms for a forward call alone here;
# 12.1 against 11.9 ms, median of 8 interleaved rounds, for a whole SG update at batch 32)
RNN_LAYER = torch.ops.aten.mkldnn_rnn_layer.default
RNN_LAYER_BACKWARD = torch.ops.aten.mkldnn_rnn_layer_backward.default


def fusable(modules: SGModules, device: torch.device) -> bool:
    """Whether :meth:`SGPredictor.loss_gradients` applies: LSTM predictors on a CPU with oneDNN."""
    first = next(iter(modules.predictors.values()))
    return first.kind == "lstm" and device.type == "cpu" and torch._C._get_mkldnn_enabled()


def sg_loss(predicted: torch.Tensor, true_grad: torch.Tensor) -> torch.Tensor:
    """Eq. 11: L^SG = ||SG(h, y) - dL/dh||^2, averaged over batch, steps and units."""
    return torch.mean((predicted - true_grad) ** 2)


def mean_step_norm(g: torch.Tensor) -> torch.Tensor:
    """Mean over samples and steps of the L2 norm of a (B, T, k) gradient."""
    return torch.linalg.vector_norm(g, dim=-1).mean()


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b, 0 where b is 0 (no true gradient)."""
    return torch.where(b > 0, a / b.clamp_min(1e-30), torch.zeros_like(a))


def sg_fit_metrics(s: torch.Tensor, g: torch.Tensor) -> Dict[str, torch.Tensor]:
    """How well synthetic gradients s predict the true ones g (same shape (..., k)): cosine (of the
    flattened tensors), MSE, relative MSE = MSE / mean(g^2) (a zero predictor scores 1) and norm
    ratio = mean ||s|| / mean ||g|| over samples and steps (docs/results/sg_fit.md). 0-d tensors."""
    a, b = s.flatten(), g.flatten()
    mse = torch.mean((a - b) ** 2)
    return {"cosine": _ratio(a @ b, a.norm() * b.norm()), "mse": mse, "rel_mse": _ratio(mse, torch.mean(b ** 2)),
            "norm_ratio": _ratio(mean_step_norm(s), mean_step_norm(g))}


def build_sg_modules(model: DictConfig, sg: DictConfig, target_dim: int) -> SGModules:
    """One group's predictors for an NMN built from ``model`` (every controller is k = slot_width wide)."""
    dims = {c: int(model.slot_width) for c in CONTROLLERS}
    return SGModules(dims, target_dim, sg.hidden, sg.kind, scaling=sg.target_scaling, momentum=sg.scale_momentum)
