"""``SGEndpoint``: a stream's side of the SG exchange, one verb per act (as dni-pytorch's
``send`` / ``receive``); :class:`LocalEndpoint` is the in-process one over an
:class:`~sharedsg.learn.sg.SGLearner`, ``sharedsg.runtime.service.endpoint.RayEndpoint`` the one over
the SG service on Ray.

An endpoint moves weights and targets and keeps the books; it decides nothing.
:class:`ExchangeRule` decides when to call which verb around one training step (the staleness
rule, the transport, ``experiment.synchronous``), for an NMN stream
(:meth:`sharedsg.harness.stream.Stream.train`) and a model of the public API
(:class:`sharedsg.api.Endpoint`) alike, so ``--local``, Ray and the API run one algorithm.

Guarantees every implementation gives:

- **versions**: a group's version goes up by one per update (Eq. 11) and never goes back;
  :attr:`~SGEndpoint.version` is the newest one this endpoint has seen (in acknowledgements or
  weights), so a stream can tell how many versions behind its copy is;
- **sequence numbers, exactly once**: :meth:`~SGEndpoint.send` numbers the stream's pushes
  1, 2, 3, ... (after a restart: after its checkpoint's, or the group's high mark) and never
  resends one; the group trains on each number at most once, and counts every number once:
  as a push, or, lost in a crash of the group (acknowledged but not in its checkpoint, or failed
  on the dead actor), as a lost push (``lost_pushes``) when the stream's next push reports its
  acknowledgement watermark;
- **in flight**: at most ``sg.max_inflight_pushes`` pushes are un-acknowledged, ever (the
  in-process endpoint: none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Protocol

import torch
from omegaconf import DictConfig

from sharedsg.learn.sg import SGLearner
from sharedsg.learn.types import SGState, SGTargets


class SGEndpoint(Protocol):
    """A stream's side of its SG group: the verbs :meth:`~sharedsg.harness.stream.Stream.train` calls."""

    @property
    def version(self) -> int:
        """The newest group version this endpoint has seen."""

    @property
    def seq(self) -> int:
        """The sequence number of the last push sent (a stream checkpoint keeps it)."""

    @property
    def losses(self) -> Dict[str, float]:
        """The group's last SG losses (``sg/<c>/loss``) this endpoint was told of."""

    def send(self, targets: SGTargets, lag: float, wait: bool = False) -> None:
        """Push one step's targets with the next sequence number and the stream's version ``lag``;
        returns once at most ``sg.max_inflight_pushes`` pushes are un-acknowledged (``wait``: once
        this one is acknowledged, i.e. queued at the group)."""

    def flush(self) -> None:
        """Return once every push sent is acknowledged and the group has trained on all it accepted;
        :attr:`version` is then the group's."""

    def refresh(self, have_version: int, wait: bool = False) -> None:
        """Start fetching the group's weights if newer than ``have_version`` (at most one fetch in
        flight; ``wait``: it completes before this returns, with the weights as of now)."""

    def receive(self, have_version: int, wait: bool = False) -> Optional[SGState]:
        """Collect the acknowledgements that are in; the fetched weights if they have arrived
        (``wait``: wait for the fetch in flight) and are newer than ``have_version``, else None.
        Never starts a fetch."""

    def pull(self, have_version: int) -> Optional[SGState]:
        """The group's weights now if newer than ``have_version`` (blocking; counted in
        ``blocking_pulls``)."""

    def predict(self, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The group's synthetic gradients (Eq. 9) for controller outputs ``h`` and targets ``y``
        (the ``rpc`` transport); after training on every push it acknowledged, with ``exact``."""

    def info(self) -> Dict[str, Any]:
        """``seq``, ``acked``, ``known_version``, ``push_errors``, ``max_in_flight`` (the most pushes
        ever un-acknowledged at once), ``blocking_pulls``, ``reconnects``, ``resumed_from_server``."""


class LocalEndpoint:
    """The exchange with an SG group in this process: a push is trained on as it is sent (one
    update, one version), a fetch completes as it starts, nothing is ever in flight or lost."""

    def __init__(self, group: SGLearner) -> None:
        self.group = group
        self.seq = 0
        self.version = group.version
        self.losses: Dict[str, float] = {}
        self.blocking_pulls = 0
        self._fetched: Optional[SGState] = None

    def _state(self, have_version: int) -> Optional[SGState]:
        self.version = max(self.version, self.group.version)
        return self.group.state(on_device=True) if self.group.version > have_version else None

    def send(self, targets: SGTargets, lag: float, wait: bool = False) -> None:
        self.seq += 1
        self.losses = self.group.update([targets])
        self.version = max(self.version, self.group.version)

    def flush(self) -> None:
        self.version = max(self.version, self.group.version)

    def refresh(self, have_version: int, wait: bool = False) -> None:
        if self._fetched is None:
            self._fetched = self._state(have_version)

    def receive(self, have_version: int, wait: bool = False) -> Optional[SGState]:
        state, self._fetched = self._fetched, None
        return state if state is not None and state.version > have_version else None

    def pull(self, have_version: int) -> Optional[SGState]:
        self.blocking_pulls += 1
        return self._state(have_version)

    def predict(self, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.group.predict(h, y)

    def info(self) -> Dict[str, Any]:
        return {"seq": self.seq, "acked": self.seq, "known_version": self.version, "push_errors": 0,
                "max_in_flight": 0, "blocking_pulls": self.blocking_pulls, "reconnects": 0, "resumed_from_server": False}


class SGCopy(Protocol):
    """What holds a copy of a group's weights: a stream's learner, an API model's predictors."""

    @property
    def sg_version(self) -> int:
        """The version of the weights held."""

    def load_sg(self, state: SGState) -> None:
        """Hold ``state``'s weights and version from now on."""


@dataclass(frozen=True)
class ExchangeRule:
    """When a step calls which verb of its :class:`SGEndpoint` (docs/design.md, 'One training step'):
    :meth:`before_step`, the step on the copy (Eq. 9-10), :meth:`after_step`."""

    max_staleness: int
    synchronous: bool = False
    rpc: bool = False

    @classmethod
    def of(cls, sg: DictConfig, synchronous: bool = False) -> "ExchangeRule":
        """The rule of ``sg.*`` settings (``sg.max_staleness``, ``sg.transport``) and ``experiment.synchronous``."""
        return cls(int(sg.max_staleness), bool(synchronous), sg.transport == "rpc")

    def before_step(self, ep: SGEndpoint, copy: SGCopy) -> int:
        """``replica``: load the weights fetched since the last step; when the copy is more than
        ``max_staleness`` versions behind the newest version seen, wait for the fetch in flight, and if
        it is still that far behind, pull (blocking). The versions the step's copy lags (``rpc``: 0)."""
        if self.rpc:
            return 0
        self._load(copy, ep.receive(copy.sg_version))
        if ep.version - copy.sg_version > self.max_staleness:
            self._load(copy, ep.receive(copy.sg_version, wait=True))
        if ep.version - copy.sg_version > self.max_staleness:
            self._load(copy, ep.pull(copy.sg_version))
        return ep.version - copy.sg_version

    @staticmethod
    def _load(copy: SGCopy, state: Optional[SGState]) -> None:
        if state is not None:  # newer than the copy: receive and pull return nothing else
            copy.load_sg(state)

    def after_step(self, ep: SGEndpoint, copy: SGCopy, targets: SGTargets, lag: int) -> None:
        """Send the step's targets (``rpc``: wait for the acknowledgement); ``synchronous``: wait until
        the group has trained on them; ``replica``: once the copy is ``max(1, max_staleness)`` versions
        behind, start fetching (``synchronous``: the fetch completes here)."""
        ep.send(targets, lag=float(lag), wait=self.rpc)
        if self.synchronous:
            ep.flush()
        if not self.rpc and ep.version - copy.sg_version >= max(1, self.max_staleness):
            ep.refresh(copy.sg_version, wait=self.synchronous)
