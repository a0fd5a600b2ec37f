"""Synthetic gradients for any ``nn.Module``, from an SG group shared by any number of models.

Verbs (docs/api.md): :func:`connect` a model to a group, in this process (:class:`SGGroup`) or on
Ray (``"experiment/group"``, an SG service :func:`serve` started or a running attachable
experiment's); :meth:`Endpoint.mark` an activation h with its context y (e.g. the one-hot label):
on the way back its true gradient g = dL/dh is sent to the group as an Eq. 11 target, and the
synthetic gradient s = SG(h, y) (Eq. 9) of the version this model holds is applied below h, as
``settings.mode`` says (:class:`~sharedsg.config.ApiConfig`); :meth:`Endpoint.fit` reads how well
s matched g; :meth:`Endpoint.flush` and :meth:`Endpoint.detach`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Dict, Mapping, Optional, Tuple

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sharedsg.config import ApiConfig, ConfigError, ExperimentConfig, ModelConfig, SGConfig
from sharedsg.configcheck import check_values
from sharedsg.errors import DimensionMismatch, UserError
from sharedsg.harness.endpoint import ExchangeRule, LocalEndpoint, SGEndpoint
from sharedsg.learn.sg import SGLearner
from sharedsg.learn.types import SGState, SGTargets
from sharedsg.model.synthetic import SGModules


def settings(schema: type, values: Mapping[str, Any]) -> DictConfig:
    """``values`` over ``schema``'s defaults (:mod:`sharedsg.config`), checked; a one-line :class:`ConfigError`."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), dict(values))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config error: {str(exc).strip().splitlines()[0]}") from None
    check_values(cfg, schema)
    return cfg


class SGGroup:
    """One SG group in this process: its predictors are built for the first model that joins; each
    model exchanges with them through a :class:`~sharedsg.harness.endpoint.LocalEndpoint` (one Eq. 11
    update per target set sent, at once: the in-process reference)."""

    def __init__(self, seed: int = 0, **sg: Any) -> None:
        self.sg, self.seed = settings(SGConfig, sg), seed
        self.learner: Optional[SGLearner] = None
        self.endpoints: Dict[str, LocalEndpoint] = {}  # the models connected now

    @property
    def pushes(self) -> Dict[str, int]:
        """Target sets received per connected model."""
        return {name: ep.seq for name, ep in self.endpoints.items()}

    def join(self, name: str, dims: Mapping[str, int]) -> LocalEndpoint:
        if self.learner is None:
            with torch.random.fork_rng():  # the model's random stream is left as it was
                self.learner = SGLearner(OmegaConf.structured(ModelConfig), self.sg, self.seed, dims=dims)
        try:
            self.learner.check_dims(dict(dims))
        except DimensionMismatch as exc:
            raise UserError(f"model '{name}' does not fit this SG group: {exc}") from None
        self.endpoints[name] = LocalEndpoint(self.learner)
        return self.endpoints[name]

    def leave(self, name: str) -> None:
        self.endpoints.pop(name)


class Endpoint:
    """One model's side of an SG group, over the group's
    :class:`~sharedsg.harness.endpoint.SGEndpoint` with the NMN streams' :class:`ExchangeRule`
    (``sg.max_staleness``, ``sg.transport``); marks of one step are completed by one backward pass."""

    def __init__(self, endpoint: SGEndpoint, dims: Mapping[str, int], cfg: DictConfig, sg: DictConfig,
                 synchronous: bool = False, leave: Optional[Callable[[], None]] = None) -> None:
        self.endpoint: Optional[SGEndpoint] = endpoint
        self.cfg, self.dims, self.leave = cfg, dict(dims), leave
        self.rule = ExchangeRule.of(sg, synchronous)
        self.names = tuple(k for k in self.dims if k != "target")
        with torch.random.fork_rng():  # the replica's initial weights are never used: the model's random stream stays
            self.modules = SGModules({n: self.dims[n] for n in self.names}, self.dims["target"], sg.hidden,
                                     sg.kind, scaling=sg.target_scaling,
                                     momentum=sg.scale_momentum).requires_grad_(False)
        self.sg_version = -1
        self.load_sg(endpoint.pull(-1))
        self.lag = 0
        self.marked: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        self.grads: Dict[str, torch.Tensor] = {}
        self.synthetic: Optional[Dict[str, torch.Tensor]] = None
        self.fits: Dict[str, Deque[Tuple[float, float, float]]] = {n: deque(maxlen=cfg.fit_window) for n in self.names}

    @property
    def version(self) -> int:
        """The version of the group's weights this model holds."""
        return self.sg_version

    def load_sg(self, state: Optional[SGState]) -> None:
        if state is not None and state.version > self.sg_version:
            self.modules.load_state_dict(state.weights)
            self.sg_version = state.version

    def mark(self, name: str, h: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """h (B, k) or (B, T, k), unchanged forward; on the way back its gradient is sent and replaced."""
        if self.endpoint is None:
            raise UserError("this model was detached from its SG group; connect() it again")
        if self.dims.get(name) != h.shape[-1] or name == "target" or context.shape[-1] != self.dims["target"]:
            raise UserError(f"mark('{name}'): an activation of width {h.shape[-1]} with a context of width "
                            f"{context.shape[-1]}; this model connected with {self.dims}")
        if not (torch.is_grad_enabled() and h.requires_grad):
            return h
        if name in self.marked or not self.marked:  # a new step: the weights the staleness rule asks for
            self.marked, self.grads, self.synthetic = {}, {}, None
            self.lag = self.rule.before_step(self.endpoint, self)
        seq = (lambda t: t.detach().unsqueeze(1) if t.dim() == 2 else t.detach())
        self.marked[name] = (seq(h), seq(context))
        out = h.view_as(h)
        out.register_hook(lambda g: self._arrived(name, g))
        return out

    def _arrived(self, name: str, g: torch.Tensor) -> Optional[torch.Tensor]:
        """The true gradient reached h: keep it as a target (sent with the step's last), apply s."""
        if self.synthetic is None:
            missing = [n for n in self.names if n not in self.marked]
            if missing:
                raise UserError(f"mark() every activation of the group each step; not marked: {', '.join(missing)}")
            y = next(iter(self.marked.values()))[1]
            predict = self.endpoint.predict if self.rule.rpc else self.modules  # the group's, or the replica's
            self.synthetic = predict({n: h for n, (h, _) in self.marked.items()}, y)  # Eq. 9
        per_sample = g.shape[0] if self.cfg.loss == "mean" else 1
        s = self.synthetic[name].reshape(g.shape) / per_sample
        self._note_fit(name, s, g)
        self.grads[name] = g.detach().reshape(self.marked[name][0].shape) * per_sample
        if len(self.grads) == len(self.names):
            y = next(iter(self.marked.values()))[1]
            targets = SGTargets({n: self.marked[n][0].cpu() for n in self.names}, y.float().cpu(),
                                {n: self.grads[n].cpu() for n in self.names})
            with torch.enable_grad():  # a backward hook runs with autograd off; an in-process group's update needs it
                self.rule.after_step(self.endpoint, self, targets, self.lag)
            self.marked, self.grads = {}, {}
        if self.cfg.mode == "add":
            return g + self.cfg.alpha * s
        return s if self.cfg.mode == "decoupled" else None

    def _note_fit(self, name: str, s: torch.Tensor, g: torch.Tensor) -> None:
        mean_g2 = g.pow(2).mean().clamp_min(1e-30)
        cos = torch.nn.functional.cosine_similarity(s.flatten(), g.flatten(), dim=0, eps=1e-30)
        ratio = s.norm() / g.norm().clamp_min(1e-30)
        self.fits[name].append((float(cos), float((s - g).pow(2).mean() / mean_g2), float(ratio)))

    def fit(self) -> Dict[str, Dict[str, float]]:
        """Per activation, over the last ``fit_window`` steps: cosine(s, g), relative MSE (MSE / mean(g²):
        a zero predictor scores 1) and norm ratio |s| / |g|; ``version``: the weights held now."""
        out: Dict[str, Dict[str, float]] = {}
        for n, rows in self.fits.items():
            means = [sum(col) / len(rows) for col in zip(*rows)] if rows else [float("nan")] * 3
            out[n] = dict(zip(("cosine", "rel_mse", "norm_ratio"), means), steps=len(rows), version=self.version)
        return out

    def flush(self) -> int:
        """Wait until the group has trained on every target set sent; load its newest weights; the version."""
        self.endpoint.flush()
        self.load_sg(self.endpoint.pull(self.sg_version))
        return self.sg_version

    def detach(self) -> None:
        """Flush, then leave the group (which goes on serving its other models)."""
        self.flush()
        if self.leave is not None:
            self.leave()
        self.endpoint = None


def connect(group: SGGroup | str, name: str, dims: Mapping[str, int], context_dim: int, *,
            address: Optional[str] = None, **api: Any) -> Endpoint:
    """Model ``name`` joins ``group`` with activations of widths ``dims`` and contexts of width
    ``context_dim``: an :class:`SGGroup`, or ``"experiment/group"`` on Ray (joined at ``address``, else
    the Ray this process runs in, else the local Ray of attachable experiments). ``api``:
    :class:`~sharedsg.config.ApiConfig` settings. A model that does not fit is a one-line :class:`UserError`."""
    cfg = settings(ApiConfig, api)
    full = {**{k: int(v) for k, v in dims.items()}, "target": int(context_dim)}
    if isinstance(group, SGGroup):
        return Endpoint(group.join(name, full), full, cfg, group.sg, leave=lambda: group.leave(name))
    from sharedsg.runtime.service.link import join  # ray loads only for a group on Ray

    experiment, _, group_name = str(group).partition("/")
    if not experiment or not group_name:
        raise UserError(f"group '{group}' is neither an SGGroup nor 'experiment/group'")
    endpoint, service = join(experiment, group_name, name, full, address)
    return Endpoint(endpoint, full, cfg, service.sg, bool(service.experiment.synchronous))


def serve(experiment: str, storage: str, **sg: Any) -> Any:
    """Start SG service ``experiment`` on the Ray this process is connected to (checkpoints under
    ``storage``); models join its groups with ``connect("experiment/group", ...)``. It lives while the
    returned :class:`~sharedsg.runtime.service.link.Service` is held (or until its ``stop()``)."""
    from sharedsg.runtime.service.link import Service

    name = settings(ExperimentConfig, {"name": experiment}).name  # no '/': connect() splits there
    return Service(name, storage, settings(SGConfig, sg))
