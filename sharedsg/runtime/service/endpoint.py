"""``RayEndpoint``: the :class:`~sharedsg.harness.endpoint.SGEndpoint` of a stream on Ray, over
its :class:`~sharedsg.runtime.service.client.SGClient` (pushes, acknowledgements, reconnection) and
its group's :class:`~sharedsg.runtime.service.server.SGGroupServer`.

What the transport adds to the verbs' guarantees: a push is acknowledged once it is queued at the
group (``exact``: once there is room), before it is trained on, so :attr:`RayEndpoint.version`
comes from acknowledgements and fetched weights and may lag the group's; a fetch is a ``pull``
answered in the background with an ``ObjectRef`` (one ``ray.put`` per version, shared by a
node's streams); :meth:`RayEndpoint.flush` waits for the group's ``drain``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import ray
import torch

from sharedsg.learn.types import SGState, SGTargets
from sharedsg.runtime.service.client import SGClient


class RayEndpoint:
    def __init__(self, client: SGClient) -> None:
        self.client = client
        self._fetch: Optional[ray.ObjectRef] = None  # a pull in the background
        self._fetched: Optional[SGState] = None  # a fetch that completed in refresh(wait=True)

    @property
    def version(self) -> int:
        return self.client.known_version

    @property
    def seq(self) -> int:
        return self.client.seq

    @property
    def losses(self) -> Dict[str, float]:
        return self.client.last_losses

    def send(self, targets: SGTargets, lag: float, wait: bool = False) -> None:
        self.client.push(targets, lag=lag, wait=wait)

    def flush(self) -> None:
        self.client.flush()
        version = ray.get(self.client.actor.drain.remote())
        self.client.known_version = max(self.client.known_version, int(version))

    def refresh(self, have_version: int, wait: bool = False) -> None:
        if self._fetch is not None or self._fetched is not None:
            return
        ref = self.client.actor.pull.remote(have_version)
        if wait:
            self._fetched = self._weights(ref)
        else:
            self._fetch = ref

    def _weights(self, ref: ray.ObjectRef) -> Optional[SGState]:
        try:
            return self.client.weights_of(ray.get(ref))
        except ray.exceptions.RayError:  # the group went away; the next push reconnects
            return None

    def receive(self, have_version: int, wait: bool = False) -> Optional[SGState]:
        self.client.poll(wait_for=len(self.client.pending))  # the acknowledgements that are in; no waiting
        state, self._fetched = self._fetched, None
        if self._fetch is not None:
            ready, _ = ray.wait([self._fetch], timeout=None if wait else 0)
            if ready:
                state, self._fetch = self._weights(self._fetch), None
        return state if state is not None and state.version > have_version else None

    def pull(self, have_version: int) -> Optional[SGState]:
        return self.client.pull(have_version)

    def predict(self, h: Dict[str, torch.Tensor], y: torch.Tensor) -> Dict[str, torch.Tensor]:
        return ray.get(self.client.actor.predict.remote({c: v.cpu() for c, v in h.items()}, y.cpu()))

    def info(self) -> Dict[str, Any]:
        return self.client.info()
