"""StreamLearner: one NMN's training and evaluation step (DESIGN.md, 'One training step').

The controllers learn through two paths:

- slow: the true gradient dL/dtheta by back-propagation (every module);
- fast: the synthetic gradient s_c = SG_c(h_c, y) pushed back through controller c
  only (Eq. 10): grad_fast(theta_c) = sum_t s_c,t . dh_c,t/dtheta_c, where h_c,t is
  the controller's LSTM run over its own inputs (x_t, m_bar_t or m_t, taken as given)
  from its state at the batch start: through the controller across time, not through the
  memory or the other controllers (whose effects the true gradient carries).

``learner.mixing`` says how they mix, for the controllers' parameters only (the
encoder and decoder always get the true gradient):

- ``bp_only``: true gradient (the paper's baseline NMN);
- ``sg_only``: synthetic gradient (pure DNI);
- ``sum``: true + synthetic;
- ``lambda``: (1 - lam) * true + lam * synthetic.

The true gradients of the controller outputs are taken for the *per-sample* loss
(B times the gradient of the batch-mean loss), so SG targets do not depend on the
batch size and streams with different batch sizes can share one SG group; the
synthetic gradient is divided by B again before it is pushed back.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, Iterable, List, Optional

import torch
from omegaconf import DictConfig
from torch import nn

from sharedsg.data.batch import Batch
from sharedsg.learn.tasks import Task, make_task
from sharedsg.learn.types import SGState, SGTargets, StepResult
from sharedsg.model.controllers import CONTROLLERS
from sharedsg.model.memory import attention_entropy
from sharedsg.model.nmn import NMN
from sharedsg.model.synthetic import SGModules

Predictor = Callable[[Dict[str, torch.Tensor], torch.Tensor], Dict[str, torch.Tensor]]
"""(h: controller -> (B, T, k), y_enc: (B, T, d)) -> controller -> synthetic gradient (B, T, k)."""


def build_sg_modules(model: DictConfig, sg: DictConfig, target_dim: int) -> SGModules:
    dims = {c: int(model.slot_width) for c in CONTROLLERS}
    return SGModules(dims, target_dim, sg.hidden, sg.kind)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten(), b.flatten()
    denom = a.norm() * b.norm()
    return float(a @ b / denom) if denom > 0 else 0.0


def _mean_step_norm(g: torch.Tensor) -> float:
    """Mean over samples and steps of the L2 norm of a (B, T, k) gradient."""
    return float(torch.linalg.vector_norm(g, dim=-1).mean())


class StreamLearner:
    """Owns one NMN, its Adam optimiser and its copy of the SG weights (version ``sg_version``)."""

    def __init__(self, model: DictConfig, learner: DictConfig, sg: DictConfig, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.mixing, self.lam, self.grad_clip = learner.mixing, float(learner.lam), float(learner.grad_clip)
        self.fast_update, self.fast_lr = learner.fast_update, float(learner.fast_lr)
        self.task: Task = make_task(model)
        self.nmn = NMN(model, seed=seed).to(self.device)
        self.sg = build_sg_modules(model, sg, self.task.target_dim).to(self.device)
        self.sg.requires_grad_(False)
        self.sg_version = 0
        self.optimizer = torch.optim.Adam(self.nmn.parameters(), lr=learner.lr)
        self.steps = 0

    # -- shapes a SG group must agree with -------------------------------------------
    @property
    def dims(self) -> Dict[str, int]:
        return {**self.sg.controller_dims, "target": self.task.target_dim}

    # -- SG weights --------------------------------------------------------------------
    def load_sg(self, state: SGState) -> None:
        self.sg.load_state_dict(state.weights)
        self.sg_version = state.version

    def local_predict(self, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.sg(h, y)

    # -- one step ----------------------------------------------------------------------
    def gradients(self, batch: Batch, predict: Optional[Predictor] = None
                  ) -> tuple[Dict[str, torch.Tensor], StepResult]:
        """The mixed parameter gradients (by name: the combination ``learner.mixing`` defines) and the step result.

        Nothing is applied. The carried memory state does advance.
        """
        true, fast, result = self.paths(batch, predict)
        return {n: (self._mix(g, fast[n]) if n in fast else g) for n, g in true.items()}, result

    def paths(self, batch: Batch, predict: Optional[Predictor] = None
              ) -> tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], StepResult]:
        """Forward and backward one batch: the true parameter gradients (every parameter), the
        synthetic ones pushed back through each controller (controller parameters; empty for
        ``bp_only``) and the step result. The carried memory state advances."""
        batch = batch.to(self.device)
        self.nmn.train()
        out = self.nmn(batch.x, carry=True, steps=batch.y.shape[1])
        loss = self.task.loss(out.y_hat, batch.y)
        names, params = zip(*[(n, p) for n, p in self.nmn.named_parameters() if p.requires_grad])
        flat_h: List[torch.Tensor] = [h for c in CONTROLLERS for h in out.h[c]]
        need_fast = self.mixing != "bp_only"
        grads = torch.autograd.grad(loss, list(params) + flat_h, allow_unused=True)
        true_param = {n: (g if g is not None else torch.zeros_like(p)) for n, p, g in zip(names, params, grads)}
        bsz, t_len = out.y_hat.shape[:2]
        h_grads = grads[len(params):]
        g: Dict[str, torch.Tensor] = {}
        for i, c in enumerate(CONTROLLERS):
            per_step = [
                (gh if gh is not None else torch.zeros_like(h))
                for gh, h in zip(h_grads[i * t_len:(i + 1) * t_len], out.h[c])
            ]
            g[c] = torch.stack(per_step, dim=1) * bsz  # per-sample loss gradient
        h_det = {c: out.stacked(c) for c in CONTROLLERS}
        y_enc = self.task.encode_target(batch.y)
        s = (predict or self.local_predict)(h_det, y_enc)
        s = {c: v.to(self.device) for c, v in s.items()}

        fast_param: Dict[str, torch.Tensor] = {}
        if need_fast:  # Eq. 10: each s_c pushed back through controller c alone (its LSTM over time)
            outs, grad_outs, c_params, c_names = [], [], [], []
            for c in CONTROLLERS:
                ctl = self.nmn.controller(c)
                outs += ctl.unroll(out.inputs[c], out.start[c])
                grad_outs += [s[c][:, t] / bsz for t in range(t_len)]
                c_names += [f"{c}.{n}" for n, _ in ctl.named_parameters()]
                c_params += list(ctl.parameters())
            fast = torch.autograd.grad(outs, c_params, grad_outputs=grad_outs, allow_unused=True)
            for n, p, f in zip(c_names, c_params, fast):
                fast_param[n] = f if f is not None else torch.zeros_like(p)

        metrics: Dict[str, float] = {
            "loss/train": float(loss.detach()),
            f"{self.task.metric_name}/train": self.task.metric(out.y_hat.detach(), batch.y),
            "memory/attention_entropy": float(attention_entropy(out.z.detach())),
        }
        for c in CONTROLLERS:
            metrics[f"grad_norm/{c}/true"] = _mean_step_norm(g[c])
            metrics[f"grad_norm/{c}/synthetic"] = _mean_step_norm(s[c])
            metrics[f"sg/{c}/cosine"] = _cosine(s[c], g[c])
            metrics[f"sg/{c}/mse"] = float(torch.mean((s[c] - g[c]) ** 2))
        targets = SGTargets(h={c: v.cpu() for c, v in h_det.items()}, y=y_enc.detach().cpu(),
                            g={c: v.detach().cpu() for c, v in g.items()})
        return true_param, fast_param, StepResult(targets=targets, metrics=metrics)

    def _mix(self, true: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        if self.mixing == "sg_only":
            return fast
        if self.mixing == "sum":
            return true + fast
        return (1.0 - self.lam) * true + self.lam * fast

    def step(self, batch: Batch, predict: Optional[Predictor] = None) -> StepResult:
        """One training step.

        ``learner.fast_update=sgd`` (Eq. 10): the slow path is an Adam step on the true
        gradient (for the controllers: none in ``sg_only``, (1 - lam) times it in ``lambda``),
        and the fast path its own step theta_c <- theta_c - alpha * SG_c(h_c, y) dh_c/dtheta_c
        with alpha = ``learner.fast_lr`` (times lam in ``lambda``). ``fast_update=adam``: the
        mixed gradient of :meth:`gradients` goes through one Adam step (Adam normalises its
        scale, so a synthetic gradient close to the true one changes little).
        """
        true, fast, result = self.paths(batch, predict)
        if self.fast_update == "adam":
            slow = {n: (self._mix(g, fast[n]) if n in fast else g) for n, g in true.items()}
            fast = {}
        else:
            keep = {"sg_only": 0.0, "lambda": 1.0 - self.lam}.get(self.mixing, 1.0)
            slow = {n: (g * keep if n in fast else g) for n, g in true.items()}
        for n, p in self.nmn.named_parameters():
            p.grad = slow[n]
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.nmn.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if fast:
            alpha = self.fast_lr * (self.lam if self.mixing == "lambda" else 1.0)
            with torch.no_grad():
                for n, p in self.nmn.named_parameters():
                    if n in fast:
                        p.sub_(alpha * fast[n])
        self.steps += 1
        return result

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> Dict[str, float]:
        """Held-out loss and metric; the carried state is read, not advanced, and BN uses running stats."""
        self.nmn.eval()
        losses, metrics, n = 0.0, 0.0, 0
        for batch in batches:
            batch = batch.to(self.device)
            out = self.nmn(batch.x, carry=False, steps=batch.y.shape[1])
            losses += float(self.task.loss(out.y_hat, batch.y)) * len(batch)
            metrics += self.task.metric(out.y_hat, batch.y) * len(batch)
            n += len(batch)
        self.nmn.train()
        n = max(n, 1)
        return {"loss/eval": losses / n, f"{self.task.metric_name}/eval": metrics / n}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Model outputs for inputs x (``steps`` output steps) without advancing the carried state."""
        self.nmn.eval()
        y_hat = self.nmn(x.to(self.device), carry=False, steps=steps).y_hat
        self.nmn.train()
        return y_hat.cpu()

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> Dict[str, object]:
        return {
            "nmn": {k: v.detach().cpu() for k, v in self.nmn.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "sg": {k: v.detach().cpu() for k, v in self.sg.state_dict().items()},
            "sg_version": self.sg_version,
            "steps": self.steps,
        }

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.nmn.load_state_dict(state["nmn"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sg.load_state_dict(state["sg"])
        self.sg_version = int(state["sg_version"])
        self.steps = int(state["steps"])
