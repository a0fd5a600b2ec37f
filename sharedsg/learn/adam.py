"""Adam (Kingma & Ba, 2015): the slow path's optimiser of the stream and SG learners (Eq. 8, Eq. 11).

The same arithmetic as ``torch.optim.Adam`` (no weight decay, no AMSGrad) in each of its three
forms (``form``: ``single``, its per-parameter loop; ``foreach``, its multi-tensor form; ``fused``,
its one-kernel form, ``torch._fused_adam_``) and the same ``state_dict`` layout, so a checkpoint written by
either loads into the other (``tests/test_learn_adam.py``). Why not ``torch.optim.Adam`` itself:
on this torch its first ``step`` (and its constructor) import ``torch._dynamo``, which costs every
process ~2.8 s of CPU and ~70 MB of memory; a run starts one such process per stream and per SG
group, so on a small machine that import was the largest part of starting a stream.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Tuple

import torch

FORMS = ("single", "foreach", "fused")


class Adam:
    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, form: str = "single") -> None:
        if form not in FORMS:
            raise ValueError(f"Adam form '{form}' is not one of {', '.join(FORMS)}")
        self.params: List[torch.nn.Parameter] = list(params)
        self.lr, self.betas, self.eps, self.form = float(lr), (float(betas[0]), float(betas[1])), float(eps), form
        # per parameter index, created at its first gradient (as torch does): step, exp_avg, exp_avg_sq
        self.state: Dict[int, Dict[str, torch.Tensor]] = {}

    def _moments(self, i: int, p: torch.Tensor) -> Dict[str, torch.Tensor]:
        if i not in self.state:
            # torch keeps the fused form's step on the parameter's device, the others' on the CPU
            step = torch.zeros((), device=p.device) if self.form == "fused" else torch.tensor(0.0)
            self.state[i] = {"step": step, "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                             "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        return self.state[i]

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step on every parameter that has a gradient."""
        live = [(i, p) for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        beta1, beta2 = self.betas
        states = [self._moments(i, p) for i, p in live]
        params = [p for _, p in live]
        grads = [p.grad for _, p in live]
        avgs = [s["exp_avg"] for s in states]
        sqs = [s["exp_avg_sq"] for s in states]
        steps = [s["step"] for s in states]
        if self.form == "fused":  # torch's _fused_adam
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, grads, avgs, sqs, [], steps, amsgrad=False, lr=self.lr, beta1=beta1,
                               beta2=beta2, weight_decay=0.0, eps=self.eps, maximize=False, grad_scale=None,
                               found_inf=None)
            return
        if self.form == "foreach":  # torch's _multi_tensor_adam
            torch._foreach_add_(steps, 1)
            torch._foreach_lerp_(avgs, grads, 1 - beta1)
            torch._foreach_mul_(sqs, beta2)
            torch._foreach_addcmul_(sqs, grads, grads, 1 - beta2)
            step_size = [(self.lr / (1 - beta1 ** s.item())) * -1 for s in steps]
            bc2_sqrt = [(1 - beta2 ** s.item()) ** 0.5 for s in steps]
            denom = torch._foreach_sqrt(sqs)
            torch._foreach_div_(denom, bc2_sqrt)
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(params, avgs, denom, step_size)
            return
        for p, g, m, v, s in zip(params, grads, avgs, sqs, steps):  # torch's _single_tensor_adam
            s += 1
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g.conj(), value=1 - beta2)
            k = s.item()
            denom = (v.sqrt() / ((1 - beta2 ** k) ** 0.5)).add_(self.eps)
            p.addcdiv_(m, denom, value=-(self.lr / (1 - beta1 ** k)))

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    def state_dict(self) -> Dict[str, Any]:
        """``torch.optim.Adam``'s layout: ``state`` by parameter index, one param group."""
        group = {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": 0, "amsgrad": False,
                 "maximize": False, "foreach": self.form == "foreach" or None, "capturable": False,
                 "differentiable": False, "fused": self.form == "fused" or None, "decoupled_weight_decay": False, "params": list(range(len(self.params)))}
        return {"state": {i: dict(s) for i, s in self.state.items()}, "param_groups": [group]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """A state from :meth:`state_dict` or from ``torch.optim.Adam.state_dict``, of any form (moments
        copied to each parameter's device and dtype, ``step`` where this form keeps it)."""
        (group,) = state["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"optimizer state has {len(group['params'])} parameters, this model {len(self.params)}")
        self.lr, self.betas, self.eps = float(group["lr"]), tuple(group["betas"]), float(group["eps"])
        self.state = {}
        for i, s in state["state"].items():
            p = self.params[int(i)]
            step = torch.as_tensor(s["step"], dtype=torch.float32).clone()
            self.state[int(i)] = {"step": step.to(p.device) if self.form == "fused" else step.cpu(),
                                  "exp_avg": s["exp_avg"].to(device=p.device, dtype=p.dtype).clone(),
                                  "exp_avg_sq": s["exp_avg_sq"].to(device=p.device, dtype=p.dtype).clone()}
