"""Meta-training of the NMN few-shot learner (:mod:`sharedsg.model.fewshot`) and its fast path (Eq. 9-11).

One meta-training step is one forward/backward over B episodes (the batch dimension):

* **Fast path (proposed only), inside every episode.** After the support part, the SG
  predictors give s_c,t = SG_c(h_c,t, y_t) (Eq. 9) for IC and OC at every support step
  (y_t: the item's one-hot label). Each controller then takes its own plain SGD step (Eq. 10,
  alpha = ``learner.fast_lr``, no sign, no Adam):
  theta_c,b = theta_c - alpha * sum_t s_c,b,t . dh_c,b,t / dtheta_c, back-propagated through the
  controller's own unroll over the support steps (inputs and start state detached). These are
  fast weights: one set per episode b (per batch row), dropped after it; the meta-weights
  theta_c are not changed by them. Where they act (``fewshot.fast_weights``): ``support`` (the
  default) runs the support items again with them, so the memory holds what the adapted IC and
  OC wrote, and the queries read it with the meta-weights: the loss is then a function of the
  fast weights through exactly the path the step's gradient was taken on, so with an oracle SG
  the step is a true-gradient step of the query loss. ``queries`` (the earlier form) gives them
  to the queries' own IC and OC steps and does not re-run the support part, so the step's
  gradient (through the support part) is applied where it was not taken: not a descent step
  even with an oracle SG (docs/results/omniglot.md). The step is a constant in the meta-gradient
  (first order, as FOMAML): the query loss is differentiated at theta + delta.
* **Slow path, both methods.** Adam (``fewshot.meta_lr``) on the mean over episodes of the
  query cross-entropy (with ``fewshot.step_loss``, MANN's protocol: of the support steps' and the
  queries' predictions together, :func:`episode_loss`), every module (encoder, IC, OC, WC, initial
  memory, decoder).
* **SG training (Eq. 11).** The target of SG_c at support step t is the true gradient of the
  episode's loss with respect to h_c,t from the rest of the network (the path through the
  controller's own recurrence excluded: the fast step adds it by back-propagating through the
  unroll), taken on the support pass the loss depends on (with ``support``, the re-run one);
  the SG's input is the first pass's h_c,t, the one it sees before the step. With an oracle SG
  (s = target) the fast step is exactly the true-gradient step of the support part
  (tests/test_learn_fewshot.py). Adam (``sg.lr``) on ||SG - target||^2.

Baseline NMN: the same computation with the fast path off (no SG, no per-episode weights).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig
from torch import nn
from torch.func import grad, vmap
from torch.nn import functional as F

from sharedsg.data.episodes import Episode
from sharedsg.model.fewshot import FAST_CONTROLLERS, FewShotNMN, SupportPass, Weights, cell_weights, lstm_step
from sharedsg.model.fused import activate_gates, lstm_factors_from_gates, lstm_step_backward
from sharedsg.model.synthetic import SGPredictor, sg_fit_metrics


def fast_step(model: FewShotNMN, sp: SupportPass, s: Dict[str, torch.Tensor], alpha: float,
              impl: str) -> Dict[str, Weights]:
    """Eq. 10 per episode: theta_c + delta_c,b with delta_c,b = -alpha * d(sum_t s_c,b,t . h_c,b,t)/dtheta_c,
    back-propagated through the controller's own unroll over the support steps (h and c).

    s: controller -> (B, S, k) synthetic (or oracle) gradients of the support steps. The
    returned weights have a leading episode dim B; delta is detached, theta stays in the graph.
    ``impl`` (``model.impl``): ``reference`` differentiates the unroll with ``torch.func``
    (``vmap`` of ``grad`` over the episodes); ``fast`` runs the same unroll forward and backward by
    hand for all episodes at once (:func:`unroll_gradients`). Equal to 1e-5: tests/test_learn_fewshot.py.
    """
    out: Dict[str, Weights] = {}
    for c in FAST_CONTROLLERS:
        theta = cell_weights(model.controller(c))
        base = {n: p.detach() for n, p in theta.items()}
        if impl == "fast":
            g = unroll_gradients(base, sp.inputs[c], sp.start[c], s[c].detach())
        else:
            g = _unroll_gradients_autograd(base, sp.inputs[c], sp.start[c], s[c].detach())
        out[c] = {n: theta[n].unsqueeze(0) + (-alpha * g[n]).detach() for n in theta}
    return out


def _unroll_gradients_autograd(w: Weights, inputs: torch.Tensor, start: Tuple[torch.Tensor, torch.Tensor],
                               s: torch.Tensor) -> Weights:
    """The reference form of :func:`unroll_gradients`: ``vmap(grad(...))`` over the episodes."""

    def pushed(w: Weights, inputs: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
               s_row: torch.Tensor) -> torch.Tensor:
        hc, total = (h0, c0), inputs.new_zeros(())
        for t in range(inputs.shape[0]):
            hc = lstm_step(w, inputs[t], hc)
            total = total + (hc[0] * s_row[t]).sum()
        return total

    return vmap(grad(pushed), in_dims=(None, 0, 0, 0, 0))(w, inputs, start[0], start[1], s)


def unroll_gradients(w: Weights, inputs: torch.Tensor, start: Tuple[torch.Tensor, torch.Tensor],
                     s: torch.Tensor) -> Weights:
    """Per episode b, d(sum_t s_b,t . h_b,t)/dtheta through the LSTM unroll over its S steps from
    ``start`` (h_0, c_0) (B, k), with no autograd graph: one matmul for the input part of every
    step's gates, the recurrence step by step (gate activations and cell states kept), then one
    reverse sweep (model/fused.py's step backward: dL/dh_t = s_t + dpre_{t+1} W_hh, the cell-state
    chain) and one batched matmul per weight. w: shared weights (2-D); inputs (B, S, in); s (B, S, k).
    Returns {name: (B, ...)} gradients."""
    w_ih, w_hh, b_ih, b_hh = w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"]
    b, s_len, _ = inputs.shape
    k = w_hh.shape[1]
    x = inputs.transpose(0, 1)  # (S, B, in), time-major
    act = torch.addmm(b_ih + b_hh, x.reshape(s_len * b, -1), w_ih.t()).view(s_len, b, 4, k)
    hs = inputs.new_empty(s_len + 1, b, k)
    cs = inputs.new_empty(s_len + 1, b, k)
    hs[0], cs[0] = start
    for t in range(s_len):
        a = act[t]
        a.view(b, 4 * k).addmm_(hs[t], w_hh.t())
        activate_gates(a)
        torch.addcmul(a[:, 0] * a[:, 2], a[:, 1], cs[t], out=cs[t + 1])  # c_t = f c_{t-1} + i g
        torch.mul(a[:, 3], cs[t + 1].tanh(), out=hs[t + 1])  # h_t = o tanh(c_t)
    fac = lstm_factors_from_gates(act, cs, time_dim=0).steps(0)
    dpre = inputs.new_empty(s_len, b, 4, k)
    s_steps = s.transpose(0, 1).unbind(0)
    dc_rec: Optional[torch.Tensor] = None
    dh_rec: Optional[torch.Tensor] = None
    for t in range(s_len - 1, -1, -1):
        g = s_steps[t] if dh_rec is None else s_steps[t] + dh_rec  # dL/dh_t: s_t and the path through h_{t+1}
        dc_rec = lstm_step_backward(g, dc_rec, fac, t, dpre[t])
        dh_rec = dpre[t].view(b, 4 * k) @ w_hh
    per_episode = dpre.view(s_len, b, 4 * k).permute(1, 2, 0)  # (B, 4k, S)
    gb = per_episode.sum(-1)
    return {"weight_ih": torch.bmm(per_episode, inputs), "weight_hh": torch.bmm(per_episode, hs[:-1].transpose(0, 1)),
            "bias_ih": gb, "bias_hh": gb.clone()}


def episode_loss(model: FewShotNMN, sp: SupportPass, logits: torch.Tensor, batch: Dict[str, torch.Tensor],
                 step_loss: bool) -> torch.Tensor:
    """Per-episode loss (B,): the mean cross-entropy of the query logits (B, Q, N) against ``batch["qy"]``;
    with ``step_loss`` (MANN's per-step loss) the mean over the S support steps' predictions
    (:meth:`FewShotNMN.support_logits` of ``sp``, against ``batch["sy"]``) and the Q queries together."""
    y = batch["qy"]
    if step_loss:
        logits = torch.cat([model.support_logits(sp), logits], dim=1)
        y = torch.cat([batch["sy"], y], dim=1)
    b, n = logits.shape[0], logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, n), y.reshape(-1), reduction="none").reshape(b, -1).mean(1)


def stack_episodes(episodes: List[Episode]) -> Dict[str, torch.Tensor]:
    """B episodes as batch tensors: support (B, S, 1, H, W), (B, S); queries (B, Q, 1, H, W), (B, Q)."""
    return {"sx": torch.stack([e.support_x for e in episodes]), "sy": torch.stack([e.support_y for e in episodes]),
            "qx": torch.stack([e.query_x for e in episodes]), "qy": torch.stack([e.query_y for e in episodes])}


class FewShotNMNMethod:
    """Proposed (``fast=True``: fast path of Eq. 10 from SGs trained by Eq. 11) or baseline NMN,
    behind the job interface of :mod:`sharedsg.experiments.omniglot`."""

    def __init__(self, cfg: DictConfig, ways: int, seed: int, fast: bool, train_sg: Optional[bool] = None) -> None:
        """``train_sg`` (default: ``fast``): keep SG predictors trained by Eq. 11 even when the fast
        path is off (the MNIST ablation logs what the baseline's SG would have said)."""
        self.ways, self.fast = ways, fast
        fs = cfg.fewshot
        self.model = FewShotNMN(cfg.model, ways, str(fs.label_input), seed, str(fs.write_input),
                                str(fs.oc_input), str(fs.ic_input)).to(cfg.learner.device)
        self.alpha = float(cfg.learner.fast_lr)
        self.fast_weights = str(cfg.fewshot.fast_weights)  # where the fast weights act (:meth:`adapt`)
        self.step_loss = bool(fs.step_loss)  # MANN's per-step loss (:func:`episode_loss`)
        self.impl = str(cfg.model.impl)  # how the fast step is computed (:func:`fast_step`)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=float(cfg.fewshot.meta_lr))
        k = int(cfg.model.slot_width)
        self.sg: Optional[nn.ModuleDict] = None
        if fast if train_sg is None else train_sg:
            torch.manual_seed(seed + 1)
            self.sg = nn.ModuleDict({c: SGPredictor(k, ways, int(cfg.sg.hidden), str(cfg.sg.kind),
                                                    scaling=str(cfg.sg.target_scaling),
                                                    momentum=float(cfg.sg.scale_momentum))
                                     for c in FAST_CONTROLLERS}).to(cfg.learner.device)
            self.sg_optimizer = torch.optim.Adam(self.sg.parameters(), lr=float(cfg.sg.lr))

    def synthetic(self, sp: SupportPass, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Eq. 9 at every support step: SG_c(h_c,t, y_t), detached (the fast step's input)."""
        y = F.one_hot(labels, self.ways).float()
        with torch.no_grad():
            return {c: self.sg[c](sp.outputs(c), y) for c in FAST_CONTROLLERS}

    def forward(self, batch: Dict[str, torch.Tensor]):
        """(query logits (B, Q, N), the support pass the loss depends on, the support pass the SGs saw
        (the same one without a fast step), the synthetic gradients or None)."""
        s_len = batch["sx"].shape[1]
        feats = self.model.encode(torch.cat([batch["sx"], batch["qx"]], dim=1))
        support, queries = feats[:, :s_len], feats[:, s_len:]
        if not self.fast:
            sp = self.model.support(support, batch["sy"])
            s = self.synthetic(sp, batch["sy"]) if self.sg is not None else None
            return self.model.queries(sp, queries), sp, sp, s
        with torch.set_grad_enabled(self.fast_weights == "queries"):  # support: only the fast step's input
            first = self.model.support(support, batch["sy"])
        s = self.synthetic(first, batch["sy"])
        logits, sp = self.adapt(first, support, batch["sy"], queries, s)
        return logits, sp, first, s

    def adapt(self, first: SupportPass, support: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor,
              s: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, SupportPass]:
        """The fast step of Eq. 10 from ``s`` (synthetic, or an oracle's) on the support pass ``first``,
        then the query logits and the support pass they read.

        ``fewshot.fast_weights=support``: the support items (features (B, S, D), labels (B, S)) run again
        with each episode's fast IC and OC, so the memory holds what the adapted controllers wrote, and
        the queries read it with the meta-weights; with s = the true gradient this is the true-gradient
        step of the query loss (tests/test_learn_fewshot.py). ``queries``: the queries' IC and OC steps
        use the fast weights and read ``first``'s memory."""
        weights = fast_step(self.model, first, s, self.alpha, self.impl)
        if self.fast_weights == "queries":
            return self.model.queries(first, queries, weights), first
        sp = self.model.support(support, labels, weights)
        return self.model.queries(sp, queries), sp

    def gradients(self, batch: Dict[str, torch.Tensor]):
        """One forward/backward over the batch of episodes: (per-episode loss (B,) (:func:`episode_loss`),
        query logits, the meta-gradient {name: mean over episodes}, the SG targets {controller: (B, S, k)}:
        the gradient with respect to the outputs of the support pass the loss depends on, the support pass
        the SGs saw (their input), the synthetic gradients or None)."""
        logits, sp, first, s = self.forward(batch)
        b = logits.shape[0]
        per_episode = episode_loss(self.model, sp, logits, batch, self.step_loss)
        names, params = zip(*self.model.named_parameters())
        outputs = [h for c in FAST_CONTROLLERS for h in sp.h_out[c]]
        # materialize: an output nothing consumes (write_input=q: OC's support outputs but the last) has a zero target
        grads = torch.autograd.grad(per_episode.sum(), list(params) + outputs, materialize_grads=True)
        meta = {name: g / b for name, g in zip(names, grads)}  # the mean over episodes
        s_len, flat = batch["sy"].shape[1], grads[len(params):]
        targets = {c: torch.stack(flat[i * s_len:(i + 1) * s_len], dim=1) for i, c in enumerate(FAST_CONTROLLERS)}
        return per_episode.detach(), logits.detach(), meta, targets, first, s

    def meta_step(self, episodes: List[Episode]) -> Dict[str, float]:
        self.model.train()
        batch = stack_episodes(episodes)
        per_episode, logits, meta, targets, first, s = self.gradients(batch)
        for name, p in self.model.named_parameters():
            p.grad = meta[name]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        # the metrics stay on the device until one transfer at the end (no host sync per metric)
        query_loss = F.cross_entropy(logits.reshape(-1, self.ways), batch["qy"].reshape(-1))
        metrics = {"loss/query_train": query_loss,
                   "accuracy/query_train": (logits.argmax(-1) == batch["qy"]).float().mean()}
        if self.step_loss:
            metrics["loss/train"] = per_episode.mean()  # the support steps' and the queries' predictions
        for c in FAST_CONTROLLERS:
            metrics[f"grad_norm/{c}/true"] = targets[c].norm(dim=-1).mean()
        if self.sg is not None:
            self.train_sg(first, batch["sy"], targets)
            for c in FAST_CONTROLLERS:
                fit = sg_fit_metrics(s[c], targets[c])
                metrics.update({f"sg/{c}/{k}": fit[k] for k in ("cosine", "rel_mse", "norm_ratio")})
                metrics[f"grad_norm/{c}/synthetic"] = s[c].norm(dim=-1).mean()
        values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()
        return dict(zip(metrics, values))

    def train_sg(self, first: SupportPass, labels: torch.Tensor, targets: Dict[str, torch.Tensor]) -> None:
        """Eq. 11: one Adam step (``sg.lr``) of the SG predictors on ||SG_c(h_c,t, y_t) - target||^2, from
        the support pass they saw (``first``) and its labels (B, S) to the true gradients ``targets``
        (with ``sg.target_scaling=rms``: on target / scale, after the running RMS took these targets)."""
        y = F.one_hot(labels, self.ways).float()
        for c in FAST_CONTROLLERS:
            self.sg[c].observe([targets[c]])
        loss = sum(self.sg[c].fit_loss(first.outputs(c), y, targets[c]) for c in FAST_CONTROLLERS)
        loss.backward()
        self.sg_optimizer.step()
        self.sg_optimizer.zero_grad(set_to_none=True)

    def query_logits(self, episodes: List[Episode]) -> torch.Tensor:
        """Test-time logits (B, Q, N): batch norm on its running statistics, SGs frozen."""
        self.model.eval()
        with torch.no_grad():
            logits = self.forward(stack_episodes(episodes))[0]
        self.model.train()
        return logits

    def test_episode(self, ep: Episode) -> float:
        return float((self.query_logits([ep])[0].argmax(-1) == ep.query_y).float().mean())

    def state_dict(self) -> Dict[str, object]:
        out: Dict[str, object] = {"model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                                  "optimizer": self.optimizer.state_dict()}
        if self.sg is not None:
            out["sg"] = {k: v.detach().clone() for k, v in self.sg.state_dict().items()}
            out["sg_optimizer"] = self.sg_optimizer.state_dict()
        return out

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.sg is not None:
            self.sg.load_state_dict(state["sg"])
            self.sg_optimizer.load_state_dict(state["sg_optimizer"])
