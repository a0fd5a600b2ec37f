"""StreamLearner: one NMN's training and evaluation step (docs: 'One training step').

The controllers learn through two paths:

- slow: the true gradient dL/dtheta by back-propagation (every module);
- fast: the synthetic gradient s_c = SG_c(h_c, y) pushed back through controller c
  only (Eq. 10), through the graph ``learner.fast_path`` names (:mod:`sharedsg.learn.fastpath`:
  ``step``, step t alone with h_{t-1} held fixed, by default; ``unroll``, the controller's LSTM
  across the batch): not through the memory or the other controllers (whose effects the true
  gradient carries).

``learner.mixing`` says how they mix, for the controllers' parameters only (the
encoder and decoder always get the true gradient), as (weight of true, weight of synthetic):

- ``bp_only``: (1, 0), the paper's baseline NMN;
- ``sg_only``: (0, 1), pure DNI;
- ``sum``: (1, 1);
- ``lambda``: (1 - lam, lam).

The true gradients of the controller outputs are taken for the *per-sample* loss
(B times the gradient of the batch-mean loss), so SG targets do not depend on the
batch size and streams with different batch sizes can share one SG group; the
synthetic gradient is divided by B again before it is pushed back.

State: with ``model.persist_memory`` the NMN's memory and controller states carry from one
training batch to the next; the learner holds that state explicitly in :attr:`carried` (None:
the NMN's initial state). :meth:`paths` and :meth:`gradients` only read it and return the
next one in the :class:`StepResult`; :meth:`step`, the training step, moves to it.

``model.impl=fast`` runs the memory module with its hand-written backward
(:mod:`sharedsg.model.fused`), which gives the SG targets dL/dh_c,t and the synthetic path
without re-running any controller; ``reference`` the per-step autograd graph. The step's
metrics are computed as tensors and fetched with one host transfer (with the SG targets).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from omegaconf import DictConfig
from torch import nn

from sharedsg.data.batch import Batch
from sharedsg.learn.adam import Adam
from sharedsg.learn.fastpath import fast_gradients
from sharedsg.learn.tasks import Task, make_task
from sharedsg.learn.types import SGState, SGTargets, StepResult
from sharedsg.model import fused
from sharedsg.model.controllers import CONTROLLERS
from sharedsg.model.memory import attention_entropy
from sharedsg.model.nmn import NMN
from sharedsg.model.state import NMNState
from sharedsg.model.synthetic import build_sg_modules, mean_step_norm, sg_fit_metrics

Predictor = Callable[[Dict[str, torch.Tensor], torch.Tensor], Dict[str, torch.Tensor]]
"""(h: controller -> (B, T, k), y_enc: (B, T, d)) -> controller -> synthetic gradient (B, T, k)."""

Grads = Dict[str, torch.Tensor]
CELL_NAMES = ("cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh")  # fused.Cell's order


def mixing_weights(learner: DictConfig) -> Tuple[float, float]:
    """(weight of the true gradient, weight of the synthetic one) for the controllers."""
    lam = float(learner.lam)
    return {"bp_only": (1.0, 0.0), "sg_only": (0.0, 1.0), "sum": (1.0, 1.0), "lambda": (1.0 - lam, lam)}[learner.mixing]


@dataclass
class _Pass:
    """One batch's forward and true backward, either implementation."""

    loss: torch.Tensor
    y_hat: torch.Tensor  # detached
    z: torch.Tensor  # (B, T, l) detached
    true: Grads  # every parameter
    g: Dict[str, torch.Tensor]  # controller -> (B, T, k) per-sample dL/dh
    h: Dict[str, torch.Tensor]  # controller -> (B, T, k) detached
    final: NMNState
    fast: Callable[[Dict[str, torch.Tensor]], Grads]  # s (B, T, k), already / B -> controller parameter grads


def _to_host(tensors: List[torch.Tensor]) -> List[torch.Tensor]:
    """CPU copies of same-dtype tensors with one device-to-host transfer (contiguous, owning memory)."""
    if all(t.device.type == "cpu" for t in tensors):
        return [t.detach().contiguous() for t in tensors]
    flat = torch.cat([t.detach().reshape(-1) for t in tensors]).cpu()
    return [part.view(t.shape).clone() for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]


class StreamLearner:
    """Owns one NMN, its Adam optimiser, its copy of the SG weights (version ``sg_version``)
    and, with ``model.persist_memory``, the NMN state carried between batches (:attr:`carried`)."""

    def __init__(self, model: DictConfig, learner: DictConfig, sg: DictConfig, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.mixing, self.grad_clip = learner.mixing, float(learner.grad_clip)
        self.w_true, self.w_fast = mixing_weights(learner)
        self.fast_update, self.fast_lr, self.fast_path = learner.fast_update, float(learner.fast_lr), learner.fast_path
        self.task: Task = make_task(model)
        self.nmn = NMN(model, seed=seed).to(self.device)
        self.persist = bool(model.persist_memory)
        self.carried: Optional[NMNState] = None
        self.sg = build_sg_modules(model, sg, self.task.target_dim).to(self.device)
        self.sg.requires_grad_(False)
        self.y_frame = str(sg.y_frame)
        self.sg_version = 0
        # model.impl=fast: Adam's fused form, the same arithmetic in one kernel for all parameters
        fast = model.impl == "fast"
        self.optimizer = Adam(self.nmn.parameters(), lr=learner.lr, form="fused" if fast else "single")
        self.params = dict(self.nmn.named_parameters())  # by name, listed once (the module walk costs ~1 ms)
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
    def _mix(self, true: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return self.w_true * true + self.w_fast * fast

    def gradients(self, batch: Batch, predict: Optional[Predictor] = None) -> Tuple[Grads, StepResult]:
        """The mixed parameter gradients (by name: the combination ``learner.mixing`` defines)
        and the step result. Nothing is applied; the learner does not change."""
        true, fast, result = self.paths(batch, predict)
        return {n: (self._mix(g, fast[n]) if n in fast else g) for n, g in true.items()}, result

    def sg_condition(self, batch: Batch) -> torch.Tensor:
        """The y_t the SG predictors are conditioned on (Eq. 9): the encoded target, with
        ``sg.y_frame=decoder`` and ``model.predict_offsets`` minus the last observed frame (the frame
        the decoder predicts in, Eq. 8: the OC's direct gradient is then a function of (h, y))."""
        y = self.task.encode_target(batch.y)
        if self.y_frame == "decoder" and self.nmn.offsets:
            y = y - batch.x[:, -1:, : y.shape[-1]]
        return y

    def _state(self) -> Optional[NMNState]:
        return self.carried if self.persist else None

    def paths(self, batch: Batch, predict: Optional[Predictor] = None) -> Tuple[Grads, Grads, StepResult]:
        """Forward and backward one batch from :attr:`carried`: the true parameter gradients (every
        parameter), the synthetic ones pushed back through each controller (controller parameters;
        empty for ``bp_only``) and the step result (with the state the next batch would start
        from). The learner does not change."""
        batch = batch.to(self.device)
        self.nmn.train()
        run = self._pass_fast if self.nmn.impl == "fast" else self._pass_reference
        p = run(batch)
        bsz = p.y_hat.shape[0]
        y_enc = self.sg_condition(batch)
        s = (predict or self.local_predict)(p.h, y_enc)
        s = {c: v.to(self.device) for c, v in s.items()}
        fast: Grads = p.fast({c: s[c] / bsz for c in CONTROLLERS}) if self.w_fast != 0.0 else {}

        names = ["loss/train", f"{self.task.metric_name}/train", "memory/attention_entropy"]
        values = [p.loss.detach(), self.task.metric(p.y_hat, batch.y), attention_entropy(p.z)]
        for c in CONTROLLERS:
            fit = sg_fit_metrics(s[c], p.g[c])
            names += [f"grad_norm/{c}/true", f"grad_norm/{c}/synthetic", *(f"sg/{c}/{k}" for k in fit)]
            values += [mean_step_norm(p.g[c]), mean_step_norm(s[c]), *fit.values()]
        parts = [torch.stack(values).float(), *(p.h[c] for c in CONTROLLERS), y_enc.detach(),
                 *(p.g[c] for c in CONTROLLERS)]
        host = _to_host(parts)  # one transfer: metrics and SG targets
        n = len(CONTROLLERS)
        targets = SGTargets(h=dict(zip(CONTROLLERS, host[1:1 + n])), y=host[1 + n],
                            g=dict(zip(CONTROLLERS, host[2 + n:])))
        metrics = dict(zip(names, host[0].tolist()))
        next_state = p.final.carried() if self.persist else None
        return p.true, fast, StepResult(targets=targets, metrics=metrics, next_state=next_state)

    def _named(self, grads: Dict[str, Optional[torch.Tensor]]) -> Grads:
        return {n: (grads.get(n) if grads.get(n) is not None else torch.zeros_like(q))
                for n, q in self.params.items()}

    def _pass_reference(self, batch: Batch) -> _Pass:
        """Autograd through the per-step graph (:meth:`NMN.unroll`); the fast path re-runs each
        controller over its recorded inputs (:meth:`Controller.unroll` / ``unroll_step_form``)."""
        nmn = self.nmn
        x = nmn.encode(batch.x, batch.y.shape[1])
        trace, final = nmn.unroll(x, nmn.start_state(self._state(), x.shape[0]))
        h = {c: torch.stack(trace.h[c], dim=1) for c in CONTROLLERS}
        y_hat = nmn.decode(h["oc"], batch.x)
        loss = self.task.loss(y_hat, batch.y)
        names, params = zip(*nmn.named_parameters())
        flat_h = [v for c in CONTROLLERS for v in trace.h[c]]
        grads = torch.autograd.grad(loss, list(params) + flat_h, allow_unused=True)
        bsz, t_len = y_hat.shape[:2]
        h_grads = grads[len(params):]
        g = {}
        for i, c in enumerate(CONTROLLERS):
            per_step = [(gh if gh is not None else torch.zeros_like(v))
                        for gh, v in zip(h_grads[i * t_len:(i + 1) * t_len], trace.h[c])]
            g[c] = torch.stack(per_step, dim=1) * bsz  # per-sample loss gradient

        def fast(s: Dict[str, torch.Tensor]) -> Grads:
            outs, grad_outs, c_params, c_names = [], [], [], []
            for c in CONTROLLERS:
                ctl = nmn.controller(c)
                if self.fast_path == "step":
                    h_prev = [trace.start[c][0]] + [v.detach() for v in trace.h[c][:-1]]
                    outs += ctl.unroll_step_form(trace.inputs[c], h_prev, trace.start[c])
                else:
                    outs += ctl.unroll(trace.inputs[c], trace.start[c])
                grad_outs += [s[c][:, t] for t in range(t_len)]
                c_names += [f"{c}.{n}" for n, _ in ctl.named_parameters()]
                c_params += list(ctl.parameters())
            got = torch.autograd.grad(outs, c_params, grad_outputs=grad_outs, allow_unused=True)
            return {n: (f if f is not None else torch.zeros_like(q)) for n, q, f in zip(c_names, c_params, got)}

        return _Pass(loss=loss, y_hat=y_hat.detach(), z=trace.z.detach(),
                     true=self._named(dict(zip(names, grads[:len(params)]))), g=g,
                     h={c: v.detach() for c, v in h.items()}, final=final, fast=fast)

    def _pass_fast(self, batch: Batch) -> _Pass:
        """The encoder and decoder by autograd, the memory module by :mod:`sharedsg.model.fused`."""
        nmn = self.nmn
        x = nmn.encode(batch.x, batch.y.shape[1])
        state = nmn.start_state(self._state(), x.shape[0])
        with torch.no_grad():
            tr = fused.core_forward(x.detach(), state.memory, state.h, state.c, nmn.cells(),
                                    nmn.addressing, nmn.strength)
        m = tr.outputs("oc").transpose(0, 1).detach().requires_grad_(True)
        y_hat = nmn.decode(m, batch.x)
        loss = self.task.loss(y_hat, batch.y)
        dec_names, dec_params = zip(*[(n, q) for n, q in self.params.items() if n.startswith("decoder.")])
        got = torch.autograd.grad(loss, list(dec_params) + [m])
        grads: Dict[str, Optional[torch.Tensor]] = dict(zip(dec_names, got[:-1]))
        with torch.no_grad():
            core = fused.core_backward(tr, {"oc": got[-1].transpose(0, 1)})
        for c in CONTROLLERS:
            grads.update({f"{c}.{n}": v for n, v in zip(CELL_NAMES, core.params[c])})
        if nmn.memory.learned:
            grads["memory.init"] = core.dmem0.sum(0)
        enc = [(n, q) for n, q in self.params.items() if n.startswith("encoder.") and q.requires_grad]
        if enc and x.requires_grad:
            # the gradient of sum(x * dL/dx), a scalar: with grad_outputs torch imports its symbolic-shape
            # module (sympy; 34 MB and ~0.5 s of CPU in every stream process)
            enc_grads = torch.autograd.grad((x * core.dx.transpose(0, 1)).sum(), [q for _, q in enc],
                                            allow_unused=True)
            grads.update({n: v for (n, _), v in zip(enc, enc_grads)})
        bsz = y_hat.shape[0]

        def fast(s: Dict[str, torch.Tensor]) -> Grads:
            with torch.no_grad():
                per_c = fast_gradients(tr, {c: s[c].transpose(0, 1) for c in CONTROLLERS}, self.fast_path)
            return {f"{c}.{n}": v for c in CONTROLLERS for n, v in zip(CELL_NAMES, per_c[c])}

        final = NMNState(tr.mem[-1], {c: tr.h[c][-1] for c in CONTROLLERS}, dict(tr.c_last))
        return _Pass(loss=loss, y_hat=y_hat.detach(), z=tr.z.transpose(0, 1),
                     true=self._named(grads), g={c: core.g[c].transpose(0, 1) * bsz for c in CONTROLLERS},
                     h={c: tr.outputs(c).transpose(0, 1) for c in CONTROLLERS}, final=final, fast=fast)

    def step(self, batch: Batch, predict: Optional[Predictor] = None) -> StepResult:
        """One training step: the parameters move and, with ``persist_memory``, :attr:`carried`
        becomes the batch's final state (its batch mean, detached).

        ``learner.fast_update=sgd`` (Eq. 10): the slow path is an Adam step on the true
        gradient (for the controllers: times the mixing's true weight), and the fast path its
        own step theta_c <- theta_c - alpha * w * SG_c(h_c, y) dh_c/dtheta_c with alpha =
        ``learner.fast_lr`` and w the mixing's synthetic weight. ``fast_update=adam``: the mixed
        gradient of :meth:`gradients` goes through one Adam step (Adam normalises its scale, so a
        synthetic gradient close to the true one changes little).
        """
        true, fast, result = self.paths(batch, predict)
        if self.fast_update == "adam":
            slow = {n: (self._mix(g, fast[n]) if n in fast else g) for n, g in true.items()}
            fast = {}
        else:
            slow = {n: (g * self.w_true if n in fast else g) for n, g in true.items()}
        for n, p in self.params.items():
            p.grad = slow[n]
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.nmn.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if fast:
            alpha = self.fast_lr * self.w_fast
            with torch.no_grad():
                torch._foreach_add_([self.params[n] for n in fast], list(fast.values()), alpha=-alpha)
        if self.persist:
            self.carried = result.next_state
        self.steps += 1
        return result

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> Dict[str, float]:
        """Held-out loss and metric from :attr:`carried`; BN uses running stats."""
        self.nmn.eval()
        losses, metrics, n = [], [], 0
        for batch in batches:
            batch = batch.to(self.device)
            out, _ = self.nmn(batch.x, self._state(), steps=batch.y.shape[1])
            losses.append(self.task.loss(out.y_hat, batch.y) * len(batch))
            metrics.append(self.task.metric(out.y_hat, batch.y) * len(batch))
            n += len(batch)
        self.nmn.train()
        if not losses:
            return {"loss/eval": 0.0, f"{self.task.metric_name}/eval": 0.0}
        loss, metric = torch.stack([torch.stack(losses).sum(), torch.stack(metrics).sum()]).tolist()
        return {"loss/eval": loss / n, f"{self.task.metric_name}/eval": metric / n}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Model outputs for inputs x (``steps`` output steps) from :attr:`carried`."""
        self.nmn.eval()
        out, _ = self.nmn(x.to(self.device), self._state(), steps=steps)
        self.nmn.train()
        return out.y_hat.cpu()

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> Dict[str, object]:
        return {
            "nmn": {k: v.detach().cpu() for k, v in self.nmn.state_dict().items()},
            "carried": (None if self.carried is None
                        else {k: v.detach().cpu() for k, v in self.carried.tensors().items()}),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "sg": {k: v.detach().cpu() for k, v in self.sg.state_dict().items()},
            "sg_version": self.sg_version,
            "steps": self.steps,
        }

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.nmn.load_state_dict(state["nmn"])
        carried = state["carried"]
        self.carried = None if carried is None else NMNState.from_tensors(carried).to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.sg.load_state_dict(state["sg"])
        self.sg_version = int(state["sg_version"])
        self.steps = int(state["steps"])
